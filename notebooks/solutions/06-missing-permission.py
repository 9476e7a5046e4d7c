"""Solution: GetBucketEncryption is authorised as s3:GetEncryptionConfiguration (S3 API
reference, GetBucketEncryption, "Permissions")."""
answer = {"missing_action": "s3:GetEncryptionConfiguration"}
