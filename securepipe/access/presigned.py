"""Presigned download links with a short lifetime, and the bucket-policy statement that caps
the age of any signature (``s3:signatureAge``).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from securepipe.access.credentials import MAX_KEY_BYTES, MAX_PRESIGN_S
from securepipe.errors import InvalidParameterError
from securepipe.ids import (
    check_int,
    check_session,
    describe_value,
    validate_bucket_name,
)
from securepipe.merge import merge_bucket_policy


def presign_get(
    session: boto3.Session, *, bucket: str, key: str, expires_in: int = 300
) -> str:
    """A presigned GetObject URL (SigV4) that expires after ``expires_in`` seconds (1 to 900).

    Anyone holding the URL can fetch the object until then. Wraps ``generate_presigned_url``
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ShareObjectPreSignedURL.html).
    """
    bucket = validate_bucket_name(bucket)
    if (
        not isinstance(key, str)
        or not key
        or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES
    ):
        raise InvalidParameterError(f"invalid object key {describe_value(key)}")
    expires_in = check_int(expires_in, "expires_in", 1, MAX_PRESIGN_S)
    # SigV4 explicitly: botocore may otherwise presign with legacy SigV2 for custom endpoints.
    s3 = session.client("s3", config=Config(signature_version="s3v4"))
    return str(s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
    ))


PRESIGN_CAP_SID = "DenyOldSignatures"


def presign_age_cap_statement(bucket: str, *, max_age_s: int = MAX_PRESIGN_S) -> dict[str, Any]:
    """A bucket-policy statement that refuses any request signed more than ``max_age_s`` ago.

    ``s3:signatureAge`` is the time in milliseconds since the request was signed; for a
    presigned URL that is how long ago the link was made, so this caps every presigned URL for
    the bucket at ``max_age_s`` whoever signed it and whatever ``ExpiresIn`` they chose
    (https://docs.aws.amazon.com/AmazonS3/latest/API/bucket-policy-s3-sigv4-conditions.html).
    The kit's :func:`presign_get` already caps its own links; this makes the cap observable and
    enforced for every signer.
    """
    bucket = validate_bucket_name(bucket)
    max_age_s = check_int(max_age_s, "max_age_s", 1, 7 * 86400)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    return {
        "Sid": PRESIGN_CAP_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"NumericGreaterThan": {"s3:signatureAge": str(max_age_s * 1000)}},
    }


def apply_presign_age_cap(
    session: boto3.Session, bucket: str, *, max_age_s: int = MAX_PRESIGN_S
) -> None:
    """Merge :func:`presign_age_cap_statement` into the bucket's policy by Sid
    (:func:`securepipe.merge.merge_bucket_policy`); safe to re-run.

    Wraps GetBucketPolicy and PutBucketPolicy
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketPolicy.html); the bucket's
    other statements (TLS-only, SSE-KMS, CloudTrail delivery, ...) are kept as they are.
    """
    statement = presign_age_cap_statement(bucket, max_age_s=max_age_s)
    merge_bucket_policy(check_session(session).client("s3"), bucket, [statement])
