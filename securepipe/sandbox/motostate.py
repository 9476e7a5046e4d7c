"""Read-only views into moto's in-memory backends that the emulation needs: policies, sessions,
users, buckets and Object Lock state. The only sandbox module that reads moto's internals.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from securepipe import clock
from securepipe.policy import Policy
from securepipe.sandbox.requests import parse_lock_date


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
