"""Read-only views into moto's in-memory backends that the emulation needs: policies, sessions,
users, buckets and Object Lock state. The only sandbox module that reads moto's internals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from securepipe import clock
from securepipe.policy import Policy
from securepipe.sandbox.requests import parse_lock_date
from securepipe.sandbox.signatures import Signer


def local_tag(tag: str) -> str:
    """An XML element's name without its namespace."""
    return tag.rsplit("}", 1)[-1]


def object_lock_of(bucket: str, key: str, version_id: str | None
                      ) -> tuple[str, dt.datetime] | None:
    """The Object Lock retention in force on an object version in moto's state, if any."""
    found = bucket_of(bucket)
    if found is None:
        return None
    versions = found.keys.getlist(key, default=[])
    if version_id is not None:
        versions = [v for v in versions if str(getattr(v, "version_id", "")) == version_id]
    elif versions:
        versions = versions[-1:]
    if not versions or not getattr(versions[0], "lock_mode", None):
        return None
    until = parse_lock_date(getattr(versions[0], "lock_until", None))
    if until is None or until <= clock.now():
        return None
    return str(versions[0].lock_mode), until


def aware_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def role_policies(role_arn: str) -> list[Policy]:
    """The role's inline and attached managed policies, as moto holds them."""
    from moto.iam.models import iam_backends

    account = role_arn.split(":")[4]
    iam = iam_backends[account]["aws"]
    try:
        role = iam.get_role_by_arn(role_arn)
    except Exception:  # a role that no longer exists grants nothing
        return []
    policies = [Policy.from_document(f"role:{name}", doc) for name, doc in role.policies.items()]
    for arn, managed in role.managed_policies.items():
        doc = next((v.document for v in managed.versions if v.is_default), None)
        if doc:
            policies.append(Policy.from_document(f"managed:{arn.rsplit('/', 1)[-1]}", doc))
    return policies


def bucket_of(bucket: str) -> Any:
    """moto's state for a bucket, in whichever sandbox account owns it (None if none does)."""
    from moto.s3.models import s3_backends

    owner = s3_backends.bucket_accounts.get(bucket)
    if owner is None:
        return None
    partition, account = owner
    return s3_backends[account][partition].buckets.get(bucket)


def bucket_policy_of(bucket: str) -> Policy | None:
    found = bucket_of(bucket)
    if found is None or not found.policy:
        return None
    return Policy.from_document("bucket-policy", found.policy.decode())


def user_arn_of(access_key: str | None) -> str | None:
    """The IAM user ARN moto associates with a long-term access key."""
    if not access_key:
        return None
    from moto.iam.models import iam_backends

    for account, by_partition in list(iam_backends.items()):
        key = by_partition["aws"].access_keys.get(access_key)
        if key is not None and key.user_name:
            return f"arn:aws:iam::{account}:user/{key.user_name}"
    return None


def assumed_role_of(access_key: str | None) -> Any:
    """moto's record of the STS session an access key belongs to, or ``None``."""
    if not access_key or not access_key.startswith("ASIA"):
        return None
    from moto.sts.models import sts_backends

    for _, by_partition in list(sts_backends.items()):
        role = by_partition["aws"].get_assumed_role_from_access_key(access_key)
        if role is not None:
            return role
    return None


def credentials_of(access_key: str, region_of: Callable[[str], str | None]) -> Signer | None:
    """The credentials moto's IAM (active user keys) or STS (role sessions) hold for a key.

    Only accounts that are open sandboxes count (``region_of`` answers their region); a key of
    any other account, an inactive key, or an unknown one gives ``None``.
    """
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    if access_key.startswith("ASIA"):
        for _, by_partition in list(sts_backends.items()):
            role = by_partition["aws"].get_assumed_role_from_access_key(access_key)
            if role is None:
                continue
            region = region_of(str(role.account_id))
            if region is None:
                return None
            return Signer(access_key, str(role.secret_access_key), str(role.session_token),
                          str(role.account_id), str(role.arn), region, session=role)
        return None
    for account, iam_partitions in list(iam_backends.items()):
        key = iam_partitions["aws"].access_keys.get(access_key)
        if key is None:
            continue
        region = region_of(str(account))
        if region is None or key.status != "Active" or not key.user_name:
            return None
        return Signer(access_key, str(key.secret_access_key), None, str(account),
                      f"arn:aws:iam::{account}:user/{key.user_name}", region)
    return None


def multipart_key_of(bucket: str, upload_id: str) -> str | None:
    """The key a multipart upload was created for (moto acts on the upload id alone)."""
    found = bucket_of(bucket)
    if found is None:
        return None
    upload = found.multiparts.get(upload_id)
    return None if upload is None else str(upload.key_name)


def kms_key_arn(key_id: Any, account: str, region: str) -> str | None:
    """The ARN of the key a KeyId (id, ARN, alias, alias ARN) names in one account and region.

    moto resolves an ARN by its trailing id in the caller's own account and region, so an ARN
    naming another account is accepted only if it is exactly this account's key's ARN.
    """
    if not isinstance(key_id, str) or not key_id:
        return None
    from moto.kms.models import kms_backends

    try:
        arn = str(kms_backends[account][region].describe_key(key_id).arn)
    except Exception:  # no such key here
        return None
    if key_id.startswith("arn:") and ":key/" in key_id and key_id != arn:
        return None
    if key_id.startswith("arn:") and ":alias/" in key_id and not key_id.startswith(
            arn.split(":key/")[0] + ":alias/"):
        return None
    return arn


def kms_key_of_ciphertext(blob: Any, account: str, region: str) -> str | None:
    """The ARN of the key a KMS ciphertext blob (base64, as sent) names, in moto's format."""
    import base64
    import binascii

    from moto.kms.utils import _deserialize_ciphertext_blob

    if not isinstance(blob, str):
        return None
    try:
        key_id = _deserialize_ciphertext_blob(base64.b64decode(blob, validate=True)).key_id
    except (binascii.Error, ValueError, UnicodeDecodeError, Exception):
        return None
    return kms_key_arn(key_id, account, region)


def dynamodb_key_schema(table: str, account: str, region: str) -> tuple[str, str | None] | None:
    """``(partition key, sort key or None)`` of a DynamoDB table (its name or ARN) in moto's
    state, or ``None`` if the table does not exist there (then moto acts on no item)."""
    from moto.dynamodb.models import dynamodb_backends

    try:
        found = dynamodb_backends[account][region].get_table(table)
    except Exception:  # no such table (moto raises ResourceNotFoundException)
        return None
    hash_key = getattr(found, "hash_key_attr", None)
    if not isinstance(hash_key, str):
        return None
    range_key = getattr(found, "range_key_attr", None)
    return hash_key, range_key if isinstance(range_key, str) else None
