"""Least privilege for the kit itself: the IAM identity policy of each of its own roles.

:func:`kit_role_policy` generates, from an :class:`~securepipe.provision.AccountLayout`, the
smallest policy that lets each role run its kit functions and nothing else:

* ``uploader``: :func:`~securepipe.encryption.upload.upload_sample` into ``raw/`` (PutObject,
  data keys bound to a contractor); per-contractor sessions narrow it further (step 2);
* ``ingest``: :func:`~securepipe.features.ingest.ingest_batch`: read, quarantine and delete every
  version of raw uploads; write and read back features; write the archive copy;
* ``trainer``: read encrypted features and decrypt them; nothing raw, nothing archived;
* ``auditor``: ``securepipe check``: read-only configuration reads and the audit trails and
  digest indexes, verified with the signing key's public key (``kms:GetPublicKey``, no Sign);
* ``eraser``: erasure (:mod:`securepipe.retention.erasure`): the consent table, deleting every
  version of one speaker's objects, signing receipts and trails (``kms:Sign`` on the signing
  key only) and shipping them (:class:`~securepipe.audit.ledger.TrailLedger`).

``ingest`` also reads and indexes the consent registry: consent gates every sample.

Each is tested in the sandbox by running its functions through an STS role session whose
only permissions are that policy (the sandbox evaluates identity policies for role sessions,
:mod:`securepipe.sandbox.emulation`), and by showing a call outside it refused.
Actions: https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from securepipe.access.credentials import PRINCIPAL_ARN
from securepipe.errors import InvalidParameterError
from securepipe.ids import describe_value, validate_kms_key_arn
from securepipe.provision.layout import KIT_ROLES, AccountLayout, KitRole

__all__ = ["KIT_ROLES", "KIT_ROLE_POLICY_NAME", "KIT_ROLE_TAG", "KIT_TRUST_SID", "KitRole",
           "kit_role_policy", "kit_role_tags", "kit_trust_statement"]

#: The inline policy that holds a kit role's generated statements (merged by Sid).
KIT_ROLE_POLICY_NAME = "securepipe-kit-role"
#: The tag naming which kit role a role is (``securepipe-kit-role=<role>``).
KIT_ROLE_TAG = "securepipe-kit-role"
#: The Sid of the kit's statement in a kit role's trust policy.
KIT_TRUST_SID = "KitRoleMayBeAssumed"
#: The ``securepipe`` tag each kit role carries: the scorecard's signing-key check allows
#: kms:Sign only to a role tagged ``securepipe=audit-writer`` (the eraser ships receipts and
#: trails it signs).
_PURPOSE_TAG = {"uploader": "uploader", "ingest": "ingest-worker", "trainer": "trainer",
                "auditor": "auditor", "eraser": "audit-writer"}


def kit_role_tags(role: KitRole) -> list[dict[str, str]]:
    """The IAM tags of a kit role: ``securepipe=<purpose>`` (``audit-writer`` for the eraser)
    and ``securepipe-kit-role=<role>``."""
    if role not in KIT_ROLES:
        raise InvalidParameterError(f"role must be one of {', '.join(KIT_ROLES)}, got {role!r}")
    return [{"Key": "securepipe", "Value": _PURPOSE_TAG[role]},
            {"Key": KIT_ROLE_TAG, "Value": role}]


def kit_trust_statement(principals: Sequence[str]) -> dict[str, Any]:
    """The trust-policy statement (Sid ``KitRoleMayBeAssumed``) letting ``principals`` (IAM
    ARNs: an account root, a role, a user) assume a kit role
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html)."""
    if isinstance(principals, str) or not isinstance(principals, Sequence) or not principals:
        raise InvalidParameterError("trusted principals must be a non-empty list of IAM ARNs")
    for arn in principals:
        if not isinstance(arn, str) or PRINCIPAL_ARN.fullmatch(arn) is None:
            raise InvalidParameterError(f"invalid trusted principal {describe_value(arn)}")
    return {"Sid": KIT_TRUST_SID, "Effect": "Allow",
            "Principal": {"AWS": list(principals) if len(principals) > 1 else principals[0]},
            "Action": "sts:AssumeRole"}


def _arn(bucket: str, path: str = "") -> str:
    return f"arn:aws:s3:::{bucket}{path}"


def kit_role_policy(role: KitRole, layout: AccountLayout) -> dict[str, Any]:
    """The identity policy of one kit role (``uploader``, ``ingest``, ``trainer``, ``auditor``,
    ``eraser``) for ``layout``, whose key ARNs must be known
    (:meth:`~securepipe.provision.AccountLayout.discover`)."""
    if role not in KIT_ROLES:
        raise InvalidParameterError(f"role must be one of {', '.join(KIT_ROLES)}, got {role!r}")
    if not isinstance(layout, AccountLayout) or not (
            layout.data_key_arn and layout.archive_key_arn and layout.signing_key_arn):
        raise InvalidParameterError("an AccountLayout with its key ARNs (data, archive and "
                                    "signing) is needed (AccountLayout.discover(session))")
    raw, features = layout.bucket("raw"), layout.bucket("features")
    archive, audit = layout.bucket("archive"), layout.bucket("audit")
    data_key, archive_key = layout.data_key_arn, layout.archive_key_arn
    signing_key = validate_kms_key_arn(layout.signing_key_arn)
    table = f"arn:aws:dynamodb:{layout.region}:{layout.account_id}:table/{layout.consent_table}"
    statements: list[dict[str, Any]]
    if role == "uploader":
        statements = [
            {"Sid": "PutRawUploads", "Effect": "Allow", "Action": ["s3:PutObject"],
             "Resource": [_arn(raw, "/raw/*")]},
            {"Sid": "DataKeysForContractors", "Effect": "Allow",
             "Action": ["kms:GenerateDataKey"], "Resource": [data_key],
             "Condition": {"Null": {"kms:EncryptionContext:securepipe:contractor": "false"}}},
        ]
    elif role == "ingest":
        statements = [
            {"Sid": "ReadAndRetireRaw", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject",
                        "s3:DeleteObject", "s3:DeleteObjectVersion"],
             "Resource": [_arn(raw, "/raw/*"), _arn(raw, "/quarantine/*")]},
            {"Sid": "ListRawVersions", "Effect": "Allow",
             "Action": ["s3:ListBucket", "s3:ListBucketVersions"], "Resource": [_arn(raw)]},
            {"Sid": "WriteAndVerifyFeatures", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": [_arn(features, "/features/*")]},
            {"Sid": "WriteArchive", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": [_arn(archive, "/archive/*")]},
            # Ingest's consent fence (securepipe.encryption.upload.fence_write): when consent
            # refuses a sample after its features or archive copy were written (an erasure
            # began meanwhile), ingest deletes exactly the versions it wrote. Without this, the
            # refusal is still reported and the sweeper removes them later.
            {"Sid": "RetractOwnWritesOnConsentRefusal", "Effect": "Allow",
             "Action": ["s3:DeleteObjectVersion"],
             "Resource": [_arn(features, "/features/*"), _arn(archive, "/archive/*")]},
            {"Sid": "DataKey", "Effect": "Allow",
             "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": [data_key]},
            {"Sid": "ArchiveKey", "Effect": "Allow", "Action": ["kms:GenerateDataKey"],
             "Resource": [archive_key]},
            # Consent gates every sample: ConsentRegistry.admit reads the speaker's record
            # (GetItem), claims the sample with a conditional UpdateItem on its claim item
            # (GetItem names the owner of a sample another speaker holds) and indexes the
            # sample under the speaker (UpdateItem); the gate itself needs no Scan.
            {"Sid": "ConsentGate", "Effect": "Allow",
             "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Scan"],
             "Resource": [table]},
            # ... and refuses a speaker whose erasure is anchored in the audit bucket, whatever
            # a restored registry item says (ListObjectVersions of erasure-journal/<speaker>/).
            {"Sid": "ErasureAnchors", "Effect": "Allow", "Action": ["s3:ListBucketVersions"],
             "Resource": [_arn(audit)]},
        ]
    elif role == "trainer":
        statements = [
            {"Sid": "ReadFeatures", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [_arn(features, "/features/*")]},
            {"Sid": "ListFeatures", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [_arn(features)],
             "Condition": {"StringLike": {"s3:prefix": ["features/", "features/*"]}}},
            {"Sid": "DecryptFeatures", "Effect": "Allow", "Action": ["kms:Decrypt"],
             "Resource": [data_key]},
        ]
    elif role == "auditor":
        buckets = [_arn(b) for b in layout.buckets.values()]
        statements = [
            {"Sid": "ReadConfiguration", "Effect": "Allow",
             "Action": ["s3:GetEncryptionConfiguration", "s3:GetBucketPolicy",
                        "s3:GetBucketPublicAccessBlock", "s3:GetBucketVersioning",
                        "s3:GetBucketOwnershipControls", "s3:GetLifecycleConfiguration",
                        "s3:GetMetricsConfiguration", "s3:GetBucketObjectLockConfiguration",
                        "s3:ListBucket", "s3:ListBucketVersions",
                        "s3:ListBucketMultipartUploads"], "Resource": buckets},
            {"Sid": "ReadAccountSettings", "Effect": "Allow",
             "Action": ["s3:GetAccountPublicAccessBlock", "s3:ListAllMyBuckets",
                        "kms:ListAliases", "iam:ListRoles", "iam:ListUsers",
                        "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed", "iam:GetRole",
                        "iam:GetUser", "iam:ListRoleTags", "iam:ListUserTags",
                        "iam:ListMFADevices", "iam:ListRolePolicies", "iam:GetRolePolicy",
                        "iam:ListAttachedRolePolicies", "iam:ListUserPolicies",
                        "iam:GetUserPolicy", "iam:ListAttachedUserPolicies",
                        "iam:ListGroupsForUser", "iam:ListGroupPolicies", "iam:GetGroupPolicy",
                        "iam:ListAttachedGroupPolicies", "iam:GetPolicy",
                        "iam:GetPolicyVersion",
                        "cloudtrail:DescribeTrails", "cloudtrail:GetTrail",
                        "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors",
                        "cloudwatch:DescribeAlarms", "logs:DescribeMetricFilters",
                        "logs:DescribeLogGroups", "sns:ListSubscriptionsByTopic",
                        "sns:GetSubscriptionAttributes", "sqs:GetQueueAttributes"],
             "Resource": "*"},
            # The retention check reads every speaker's consent record (Scan), never writes.
            {"Sid": "ReadConsentRegistry", "Effect": "Allow",
             "Action": ["dynamodb:DescribeTable", "dynamodb:Scan"],
             "Resource": [table]},
            {"Sid": "ReadKeys", "Effect": "Allow",
             "Action": ["kms:DescribeKey", "kms:GetKeyRotationStatus", "kms:GetKeyPolicy"],
             "Resource": [data_key, archive_key]},
            # The history check reads every version of every trail and digest index
            # (ListObjectVersions is on the bucket, above) and verifies them offline with the
            # signing key's public key: GetPublicKey, never Sign.
            {"Sid": "ReadAuditTrails", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention"],
             "Resource": [_arn(audit, "/trails/*"), _arn(audit, "/digests/*")]},
            {"Sid": "VerifyTrailSignatures", "Effect": "Allow",
             "Action": ["kms:GetPublicKey", "kms:DescribeKey"], "Resource": [signing_key]},
            # The client-side-encryption check reads object headers (HeadObject is authorised
            # as s3:GetObject); what it can fetch is ciphertext, and the auditor holds no
            # Decrypt on the data key outside the audit trail's encryption context.
            {"Sid": "ReadCiphertextHeaders", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [_arn(b, "/*") for b in (raw, features, archive)]},
            {"Sid": "VerifyTrails", "Effect": "Allow", "Action": ["kms:Decrypt"],
             "Resource": [data_key],
             "Condition": {"StringLike": {"kms:EncryptionContext:securepipe:trail": "*"}}},
        ]
    else:  # eraser
        objects = [_arn(features, "/features/*"), _arn(archive, "/archive/*"),
                   _arn(raw, "/raw/*"), _arn(raw, "/quarantine/*")]
        statements = [
            # The registry: the speaker's record, the index of samples (Scan) that attributes
            # versions, the journal and the shredding (UpdateItem), and how long backups
            # could still restore a shredded key (DescribeContinuousBackups).
            {"Sid": "ConsentRegistry", "Effect": "Allow",
             "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Scan",
                        "dynamodb:DescribeContinuousBackups"], "Resource": [table]},
            # ListBackups takes no resource-level permission (Resource "*"):
            # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
            {"Sid": "RegistryBackups", "Effect": "Allow", "Action": ["dynamodb:ListBackups"],
             "Resource": "*"},
            {"Sid": "FindEveryVersion", "Effect": "Allow",
             "Action": ["s3:ListBucket", "s3:ListBucketVersions",
                        "s3:ListBucketMultipartUploads"],
             "Resource": [_arn(b) for b in (raw, features, archive)]},
            {"Sid": "DeleteEveryVersion", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject",
                        "s3:DeleteObjectVersion", "s3:GetObjectLegalHold",
                        "s3:GetObjectRetention", "s3:AbortMultipartUpload"],
             "Resource": objects},
            # kms:Sign on the signing key only (never a wildcard of keys); GetPublicKey to
            # resume the trail history (TrailLedger.resume verifies the last digest index).
            {"Sid": "SignReceipts", "Effect": "Allow", "Action": ["kms:Sign", "kms:GetPublicKey"],
             "Resource": [signing_key]},
            # A put carrying Object Lock headers (the ledger locks every trail and digest) is
            # also authorised as s3:PutObjectRetention; shortening a GOVERNANCE retention would
            # further need s3:BypassGovernanceRetention, which no kit role holds:
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html
            {"Sid": "ShipReceipts", "Effect": "Allow",
             "Action": ["s3:PutObject", "s3:PutObjectRetention"],
             "Resource": [_arn(audit, "/receipts/*"), _arn(audit, "/trails/*"),
                          _arn(audit, "/digests/*")]},
            {"Sid": "ResumeTrailHistory", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectVersion"],
             "Resource": [_arn(audit, "/digests/*")]},
            # Signed erasure-journal heads, anchored outside the registry (the audit bucket's
            # default Object Lock retention applies; no lock headers are sent), read back by
            # a resumed erasure to refuse a rolled-back journal.
            {"Sid": "AnchorErasureJournal", "Effect": "Allow",
             "Action": ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"],
             "Resource": [_arn(audit, "/erasure-journal/*")]},
            {"Sid": "ListTrailHistory", "Effect": "Allow", "Action": ["s3:ListBucketVersions"],
             "Resource": [_arn(audit)]},
            {"Sid": "TrailKeys", "Effect": "Allow", "Action": ["kms:GenerateDataKey"],
             "Resource": [data_key]},
        ]
    return {"Version": "2012-10-17", "Statement": statements}
