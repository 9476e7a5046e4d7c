"""Least privilege for the kit itself: the IAM identity policy of each of its own roles.

:func:`kit_role_policy` generates, from an :class:`~securepipe.provision.AccountLayout`, the
smallest policy that lets each role run its kit functions and nothing else:

* ``uploader``: :func:`~securepipe.encryption.upload.upload_sample` into ``raw/`` (PutObject,
  data keys bound to a contractor); per-contractor sessions narrow it further (step 2);
* ``ingest``: :func:`~securepipe.features.ingest.ingest_batch`: read, quarantine and delete every
  version of raw uploads; write and read back features; write the archive copy;
* ``trainer``: read encrypted features and decrypt them; nothing raw, nothing archived (with
  per-speaker keys, also read speaker keys and unwrap them, to decrypt only: see below);
* ``auditor``: ``securepipe check``: read-only configuration reads and the audit trails and
  digest indexes, verified with the signing key's public key (``kms:GetPublicKey``, no Sign);
* ``eraser``: erasure (:mod:`securepipe.retention.erasure`): the consent table, deleting every
  version of one speaker's objects, signing receipts and trails (``kms:Sign`` on the signing
  key only) and shipping them (:class:`~securepipe.audit.ledger.TrailLedger`).

``ingest`` also reads and indexes the consent registry: consent gates every sample; the
``uploader`` reads a speaker's consent (never writes it). Both under DynamoDB fine-grained
access control (:func:`_fgac`): only speaker and claim items, only the attributes the gate
reads or writes (finding F9: an unconditioned UpdateItem let a compromised ingest role back-date
``erased_at``, edit the erasure head or status, or write journal items).

With per-speaker keys (``AccountLayout(speaker_keys=True)``), ``ingest`` also creates and reads
speaker keys (:class:`~securepipe.retention.shredding.SpeakerKeys`): GetItem and PutItem of
``key#<speaker>`` items (:data:`~securepipe.retention.consent.KEY_FIELDS` only; the Put only
inside a TransactWriteItems), a ConditionCheckItem on speaker items naming only
:data:`~securepipe.retention.consent.KEY_CHECK_FIELDS` (the store's "consent active, never
erased" check), and ``kms:GenerateDataKeyWithoutPlaintext``/``kms:Decrypt`` on the data key
only with the speaker-key encryption context. It still cannot delete a key item, touch a
consent field or a journal item, or read anything of an erased speaker's key (shredding deleted
it). What IAM cannot express: a condition on the request's own ConditionExpression, so the role
that creates keys can also replace one with a PutItem of its own (every ciphertext made with
the old key then fails to decrypt: an unauthorised shredding, not a disclosure); and the role
that must encrypt for any active speaker can unwrap any active speaker's key.

With per-speaker keys, ``trainer`` decrypts features made under them: GetItem of ``key#``
items (the same projected read as ingest's) and ``kms:Decrypt`` on the data key only under the
speaker-key encryption context. Nothing else of the registry: decryption reads the key item
alone (no consent field, no status), creates nothing (no ``GenerateDataKey*``) and writes no
item. Like ingest, it can unwrap the key of any speaker not yet shredded, which reading their
features needs; once shredded, there is no key item to read.
Transactions: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html

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
from securepipe.retention.consent import (
    ANCHOR_PREFIX,
    CLAIM_FIELDS,
    CLAIM_PREFIX,
    CONSENT_FIELDS,
    INDEX_FIELDS,
    KEY_CHECK_FIELDS,
    KEY_FIELDS,
    KEY_PREFIX,
)
from securepipe.retention.shredding import SPEAKER_CONTEXT_KEY

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


#: The consent table's speaker items: a partition key without ``#``. ``#`` never occurs in a
#: speaker id (securepipe.ids.validate_speaker_id), and every item of the registry's own
#: bookkeeping has one (``claim#...``, ``journal#...``), so this matches exactly the items a
#: speaker can have, and never a journal entry or a claim.
_SPEAKER_ITEMS = ("ForAllValues:StringNotLike", ["*#*"])


def _fgac(sid: str, actions: list[str], table: str, leading: tuple[str, list[str]],
          attributes: tuple[str, ...], *, transactional: bool = False,
          not_leading: tuple[str, ...] = ()) -> dict[str, Any]:
    """One consent-table statement with DynamoDB fine-grained access control, in the pattern
    of https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html:

    * ``dynamodb:LeadingKeys``: only items whose partition key matches ``leading``;
    * ``ForAllValues:StringEquals`` on ``dynamodb:Attributes``: every attribute the request
      names (read, written, or tested in a condition) is one of ``attributes`` (the key among
      them, as AWS requires);
    * ``StringEquals`` on ``dynamodb:Select`` = ``SPECIFIC_ATTRIBUTES`` for reads (a read that
      names no projection asks for ``ALL_ATTRIBUTES`` and is refused) and on
      ``dynamodb:ReturnValues`` in ``NONE``/``UPDATED_OLD``/``UPDATED_NEW`` for writes (never
      ``ALL_OLD``/``ALL_NEW``, which would return attributes outside the list); one action
      kind per statement, so each key is required where it always has a value;
    * ``Null`` = ``false`` on both multivalued keys: ``ForAllValues`` over a key the request
      does not carry is vacuously true, so a request without them (a Scan names no leading
      key) never passes on the strength of an empty set.

    ``transactional``: actions sent only inside a TransactWriteItems (``dynamodb:PutItem``,
    ``dynamodb:ConditionCheckItem``): ``dynamodb:EnclosingOperation`` must be
    ``TransactWriteItems`` (AWS's example 2 of
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html),
    and ``dynamodb:ReturnValues`` is checked where present (``StringEqualsIfExists``): an
    action of a transaction has no ``ReturnValues``, only ``ReturnValuesOnConditionCheckFailure``,
    for which AWS documents no condition key (the sandbox reads ``ALL_OLD`` there as
    ``ReturnValues`` ``ALL_OLD`` and refuses it; on AWS, a statement requiring the key would
    refuse the kit's own transaction if AWS sets none).
    """
    reads = all(a == "dynamodb:GetItem" for a in actions)
    writes = all(a in ("dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem",
                       "dynamodb:ConditionCheckItem") for a in actions)
    operator, patterns = leading
    condition: dict[str, Any] = {
        "ForAllValues:StringEquals": {"dynamodb:Attributes": list(attributes)},
        "Null": {"dynamodb:LeadingKeys": "false", "dynamodb:Attributes": "false"},
    }
    condition.setdefault(operator, {})["dynamodb:LeadingKeys"] = list(patterns)
    if not_leading:   # and none of these (a second operator on the same key: both must hold)
        condition.setdefault("ForAllValues:StringNotLike", {})["dynamodb:LeadingKeys"] = \
            list(not_leading)
    if transactional:
        if not writes:
            raise InvalidParameterError("a transactional statement names only writes")
        condition["StringEqualsIfExists"] = {"dynamodb:ReturnValues": ["NONE"]}
        condition["ForAnyValue:StringEquals"] = {
            "dynamodb:EnclosingOperation": ["TransactWriteItems"]}
    elif reads:
        condition["StringEquals"] = {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}
    elif writes:
        condition["StringEquals"] = {"dynamodb:ReturnValues": list(_RETURN_VALUES)}
    else:   # both: each key checked where it exists (AWS's own example 5)
        condition["StringEqualsIfExists"] = {"dynamodb:Select": "SPECIFIC_ATTRIBUTES",
                                             "dynamodb:ReturnValues": list(_RETURN_VALUES)}
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": [table],
            "Condition": condition}


#: What a write may ask back: nothing, or only the attributes it updated.
_RETURN_VALUES = ("NONE", "UPDATED_OLD", "UPDATED_NEW")


def _consent_read(sid: str, table: str) -> dict[str, Any]:
    """GetItem of a speaker item's consent fields (:data:`CONSENT_FIELDS`), nothing else."""
    return _fgac(sid, ["dynamodb:GetItem"], table, _SPEAKER_ITEMS, CONSENT_FIELDS)


#: Key-item names no speaker can have (speaker ids never hold ``#``, ``/`` or ``.``, and
#: are never empty: :data:`securepipe.ids.SPEAKER_ID`).
_NO_SPEAKER_KEYS = (f"{KEY_PREFIX}", f"{KEY_PREFIX}*#*", f"{KEY_PREFIX}*/*",
                    f"{KEY_PREFIX}*.*", f"{KEY_PREFIX}* *")


#: The consent table's key items, ``key#<speaker>``.
_KEY_ITEMS = ("ForAllValues:StringLike", [f"{KEY_PREFIX}*"])


def _speaker_key_reader_statements(table: str, data_key: str) -> list[dict[str, Any]]:
    """What the trainer adds with per-speaker keys: decrypting features made under them
    (:class:`~securepipe.retention.shredding.SpeakerEnvelope`'s decryption reads the speaker's
    key item and nothing else of the registry, then unwraps it with KMS Decrypt). GetItem of
    ``key#`` items projected on :data:`~securepipe.retention.consent.KEY_FIELDS` (ingest's own
    key read), and ``kms:Decrypt`` on the data key only under the speaker-key encryption
    context. No write of any item, no consent field, no journal item, and no
    ``GenerateDataKey*``: a shredded speaker's key item is gone, so nothing of theirs decrypts.
    """
    return [
        _fgac("SpeakerKeyRead", ["dynamodb:GetItem"], table, _KEY_ITEMS, KEY_FIELDS),
        {"Sid": "SpeakerKeyUnwrap", "Effect": "Allow", "Action": ["kms:Decrypt"],
         "Resource": [data_key],
         "Condition": {
             "Null": {f"kms:EncryptionContext:{SPEAKER_CONTEXT_KEY}": "false",
                      "kms:EncryptionContextKeys": "false"},
             "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": [SPEAKER_CONTEXT_KEY]}}},
    ]


def _speaker_key_statements(table: str, data_key: str) -> list[dict[str, Any]]:
    """What ingest adds with per-speaker keys (:class:`~securepipe.retention.shredding.SpeakerKeys`:
    ``ensure`` and the :class:`~securepipe.retention.shredding.SpeakerEnvelope`)."""
    return [
        # read a speaker's key item (its key attributes, projected)
        _fgac("SpeakerKeyRead", ["dynamodb:GetItem"], table, _KEY_ITEMS, KEY_FIELDS),
        # create one: a Put of the key item, with a ConditionCheck of the speaker's item
        # (consent active, never erased, no key kept in the item itself by an earlier
        # release: tested on its key_arn, never on the blob), in one transaction. Never under
        # a name no speaker can have (a copy under "key#spk01#x" or "key#"); a copy under
        # another valid id is found and deleted by the shredding, and reported by scan().
        _fgac("SpeakerKeyCreate", ["dynamodb:PutItem"], table, _KEY_ITEMS, KEY_FIELDS,
              transactional=True, not_leading=_NO_SPEAKER_KEYS),
        _fgac("SpeakerKeyConsentCheck", ["dynamodb:ConditionCheckItem"], table, _SPEAKER_ITEMS,
              KEY_CHECK_FIELDS, transactional=True),
        # make (GenerateDataKeyWithoutPlaintext) and unwrap (Decrypt) speaker keys, only
        # under the speaker-key encryption context and nothing beside it; the DataKey
        # statement above still refuses that context to every other use
        {"Sid": "SpeakerKeyMaterial", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext"],
         "Resource": [data_key],
         "Condition": {
             "Null": {f"kms:EncryptionContext:{SPEAKER_CONTEXT_KEY}": "false",
                      "kms:EncryptionContextKeys": "false"},
             "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": [SPEAKER_CONTEXT_KEY]}}},
    ]


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
            # The consent-gated upload (upload_sample(consent=ReadOnlyConsentGate(registry)))
            # reads a speaker's consent fields before and after the write, and nothing else:
            # it never writes the registry (ingest's gate claims and indexes the sample).
            _consent_read("ReadConsent", table),
            # ... and refuses a speaker whose erasure is anchored in the audit bucket
            # (ListObjectVersions of erasure-journal/<speaker>/ only).
            {"Sid": "ErasureAnchors", "Effect": "Allow", "Action": ["s3:ListBucketVersions"],
             "Resource": [_arn(audit)],
             "Condition": {"StringLike": {"s3:prefix": [f"{ANCHOR_PREFIX}/*"]}}},
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
            # Never with a speaker key's encryption context: a wrapped speaker key (the
            # registry's wrapped_key, securepipe.retention.shredding) must not be unwrapped by
            # ingest even if one leaked to it, or crypto-shredding would rest on the table's
            # read permissions alone.
            {"Sid": "DataKey", "Effect": "Allow",
             "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": [data_key],
             "Condition": {"Null": {f"kms:EncryptionContext:{SPEAKER_CONTEXT_KEY}": "true"}}},
            {"Sid": "ArchiveKey", "Effect": "Allow", "Action": ["kms:GenerateDataKey"],
             "Resource": [archive_key]},
            # Consent gates every sample (ConsentRegistry.admit), with DynamoDB fine-grained
            # access control: it reads the speaker's consent fields (GetItem), claims the
            # sample on its claim item (UpdateItem of the claimant and the claiming call's
            # token, which a release is conditioned on; GetItem names the owner of a sample
            # another speaker holds) and indexes the sample under the speaker
            # (UpdateItem of the samples set). Nothing else: no Scan, no journal item, and on
            # a speaker's item never status, erased_at, erasure_head, wrapped_key or a date.
            _consent_read("ConsentGateRead", table),
            _fgac("ConsentGateClaims", ["dynamodb:GetItem", "dynamodb:UpdateItem"], table,
                  ("ForAllValues:StringLike", [f"{CLAIM_PREFIX}*"]), CLAIM_FIELDS),
            _fgac("ConsentGateIndex", ["dynamodb:UpdateItem"], table, _SPEAKER_ITEMS,
                  INDEX_FIELDS),
            # ... and refuses a speaker whose erasure is anchored in the audit bucket, whatever
            # a restored registry item says (ListObjectVersions of erasure-journal/<speaker>/
            # only: the trails and receipts beside them are not ingest's to list).
            {"Sid": "ErasureAnchors", "Effect": "Allow", "Action": ["s3:ListBucketVersions"],
             "Resource": [_arn(audit)],
             "Condition": {"StringLike": {"s3:prefix": [f"{ANCHOR_PREFIX}/*"]}}},
        ]
        if layout.speaker_keys:
            statements += _speaker_key_statements(table, data_key)
    elif role == "trainer":
        statements = [
            {"Sid": "ReadFeatures", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [_arn(features, "/features/*")]},
            {"Sid": "ListFeatures", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [_arn(features)],
             "Condition": {"StringLike": {"s3:prefix": ["features/", "features/*"]}}},
            # Never with a speaker key's encryption context (as ingest's DataKey): unwrapping
            # speaker keys is the SpeakerKeyUnwrap statement's, and only with speaker keys.
            {"Sid": "DecryptFeatures", "Effect": "Allow", "Action": ["kms:Decrypt"],
             "Resource": [data_key],
             "Condition": {"Null": {f"kms:EncryptionContext:{SPEAKER_CONTEXT_KEY}": "true"}}},
        ]
        if layout.speaker_keys:
            statements += _speaker_key_reader_statements(table, data_key)
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
             "Action": ["dynamodb:GetItem", "dynamodb:Scan",
                        "dynamodb:DescribeContinuousBackups"], "Resource": [table]},
            # The same UpdateItem takes, renews and releases the speaker's erasure lease
            # (erasure_lease, erasure_lease_until on the speaker's item: one erasure of a
            # speaker at a time); the refusal reads it back with the GetItem above.
            # UpdateItem creates an item it does not find: never on a key item, so the eraser
            # cannot plant a speaker key it knows (finding: with GenerateDataKey under the
            # speaker-key context it could, and read the features encrypted with it).
            {"Sid": "ConsentRegistryWrites", "Effect": "Allow",
             "Action": ["dynamodb:UpdateItem"], "Resource": [table],
             "Condition": {"ForAllValues:StringNotLike": {
                 "dynamodb:LeadingKeys": [f"{KEY_PREFIX}*"]},
                 "Null": {"dynamodb:LeadingKeys": "false"}}},
            # ListBackups takes no resource-level permission (Resource "*"):
            # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
            {"Sid": "RegistryBackups", "Effect": "Allow", "Action": ["dynamodb:ListBackups"],
             "Resource": "*"},
            # Shredding (ConsentRegistry.remove_wrapped_key): one TransactWriteItems deletes
            # the speaker's key item (or checks that none appeared) and marks the speaker
            # erased (the UpdateItem above). Delete and check key items only, never a journal
            # entry, a claim or a speaker's item.
            {"Sid": "ShredSpeakerKeys", "Effect": "Allow",
             "Action": ["dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"],
             "Resource": [table],
             "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{KEY_PREFIX}*"]},
                           "Null": {"dynamodb:LeadingKeys": "false"}}},
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
            # Data keys for what the eraser writes (SSE-KMS, trails), never under the
            # speaker-key encryption context: a speaker key the eraser made it would know.
            {"Sid": "TrailKeys", "Effect": "Allow", "Action": ["kms:GenerateDataKey"],
             "Resource": [data_key],
             "Condition": {"Null": {f"kms:EncryptionContext:{SPEAKER_CONTEXT_KEY}": "true"}}},
        ]
    return {"Version": "2012-10-17", "Statement": statements}
