"""Solution: one check per finding, by id."""
answer = {
    "a contractor holds a long-lived access key": "iam_contractor_no_access_keys",
    "the raw bucket uses the AWS-managed aws/s3 key": "s3_bucket_default_encryption_cmk",
    "plaintext WAVs are stored in the features bucket": "s3_objects_client_side_encrypted",
}
