"""Guard the keys and buckets from the account's own administrators: MFA or nothing.

An administrator with ``*`` on ``*`` and a long-lived access key can decrypt every recording,
disable the key (crypto-shredding the dataset) or rewrite a bucket policy, from a laptop where
the key sits in a file. The kit's answer keeps the administrator (someone must be able to fix
the account) but denies, on the data keys and buckets, everything that reads or destroys the
data unless the request is authenticated with MFA
(``BoolIfExists aws:MultiFactorAuthPresent false``: a long-lived access key never carries the
key, https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-multifactorauthpresent),
and gives the administrator an MFA device. Routine work with an access key still runs; reading
or destroying the voice data needs a fresh MFA session (STS GetSessionToken with ``SerialNumber``).

That includes the scorecard: its content checks read object headers (GetObject, and kms:Decrypt
for SSE-KMS objects), so on AWS a guarded administrator runs ``securepipe check`` from an MFA
session (a profile with ``mfa_serial``), or the checks run as a separate read-only audit role.
The sandbox does not enforce identity policies, so there the guard is a configuration the checks
evaluate, not a refusal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.exceptions import ClientError

from securepipe.errors import InvalidParameterError
from securepipe.ids import validate_bucket_name, validate_kms_key_arn

#: What the guard denies without MFA: reading, listing or writing the data (no one reaches every
#: contractor's recordings with a long-lived key: the access review agrees), and destroying or
#: re-opening it.
#: kms:Sign too: on the audit signing key, an admin who may sign could forge the trail.
GUARDED_KMS_ACTIONS = ("kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DisableKey",
                       "kms:ScheduleKeyDeletion", "kms:PutKeyPolicy", "kms:CreateGrant",
                       "kms:Sign")
GUARDED_S3_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:ListBucket",
                      "s3:ListBucketVersions", "s3:DeleteObject", "s3:DeleteObjectVersion",
                      "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketAcl",
                      "s3:PutLifecycleConfiguration")
GUARD_POLICY_NAME = "securepipe-data-guard"


def admin_guard_policy(key_arns: Sequence[str], buckets: Sequence[str]) -> dict[str, Any]:
    """The identity policy denying :data:`GUARDED_KMS_ACTIONS` on ``key_arns`` and
    :data:`GUARDED_S3_ACTIONS` on ``buckets`` to any request without MFA."""
    if not key_arns:
        raise InvalidParameterError("key_arns must be one or more key ARNs")
    key_arns = [validate_kms_key_arn(k) for k in key_arns]
    names = [validate_bucket_name(b) for b in buckets]
    no_mfa = {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyDataKeysWithoutMfa", "Effect": "Deny", "Action": list(GUARDED_KMS_ACTIONS),
         "Resource": list(key_arns), "Condition": no_mfa},
        {"Sid": "DenyDataBucketsWithoutMfa", "Effect": "Deny",
         "Action": list(GUARDED_S3_ACTIONS),
         "Resource": [x for b in names for x in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")],
         "Condition": no_mfa},
    ]}


def apply_admin_guard(session: boto3.Session, user_name: str, *, key_arns: Sequence[str],
                      buckets: Sequence[str],
                      mfa_codes: tuple[str, str] | None = None) -> str | None:
    """Attach :func:`admin_guard_policy` to an IAM user; with ``mfa_codes`` (two consecutive
    codes from the device) also create and enable a virtual MFA device if it has none. Returns
    the user's MFA serial number, or ``None`` if it has no device.

    Wraps IAM PutUserPolicy, ListMFADevices, CreateVirtualMFADevice and EnableMFADevice
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_EnableMFADevice.html). On AWS the
    codes come from the authenticator the device's seed was loaded into; the sandbox accepts any.
    """
    iam = session.client("iam")
    iam.put_user_policy(UserName=user_name, PolicyName=GUARD_POLICY_NAME,
                        PolicyDocument=json.dumps(admin_guard_policy(key_arns, buckets)))
    devices = iam.list_mfa_devices(UserName=user_name)["MFADevices"]
    if devices:
        return str(devices[0]["SerialNumber"])
    if mfa_codes is None:
        return None
    try:
        serial = iam.create_virtual_mfa_device(
            VirtualMFADeviceName=f"{user_name}-mfa")["VirtualMFADevice"]["SerialNumber"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            raise
        serial = next(d["SerialNumber"] for d in iam.list_virtual_mfa_devices()[
            "VirtualMFADevices"] if str(d["SerialNumber"]).endswith(f"/{user_name}-mfa"))
    iam.enable_mfa_device(UserName=user_name, SerialNumber=serial,
                          AuthenticationCode1=mfa_codes[0], AuthenticationCode2=mfa_codes[1])
    return str(serial)
