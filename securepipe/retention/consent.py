"""Step 5: the consent registry, one DynamoDB item per speaker.

BIPA and GDPR both tie every recording to a consent: what it was given for, from when, for how
long, and whether it was withdrawn. The registry holds that record per speaker, plus what the
pipeline needs to honour it:

==================  =============================================================================
``speaker``         partition key (validated by :func:`securepipe.ids.validate_speaker_id`)
``contractor``      who recorded the speaker
``purpose``         what the speaker consented to
``consent_date``    ISO date the consent was given
``term_days``       the consented term, in days
``retention_until`` ISO date the consent form names as the end of retention
``withdrawn``       ISO date consent was withdrawn (absent while it stands)
``last_interaction`` ISO date of the speaker's last interaction (BIPA counts 3 years from it)
``status``          ``active``, ``withdrawn``, ``erasing``, ``erasure-held`` or ``erased``
``erased_at``       ISO timestamp the speaker's key was shredded (absent before)
``wrapped_key``     only in tables written before key items existed: the speaker's key
                    material as a KMS ciphertext (now in their key item, below); removed when
                    the speaker is erased, moved by :meth:`ConsentRegistry.migrate_wrapped_keys`
``key_id``          the handle of the speaker's shredded key, kept after erasure (pseudonymous)
``erasure_head``    the signed head (entry count, last digest) of the speaker's erasure journal:
                    what an erasure deleted so far (bucket, key, version, SHA-256), one item per
                    entry (``journal#<speaker>#<seq>``, so a journal of any length fits the
                    400 KB item limit), each signed with the erasure's KMS signing key and
                    chained to the one before, so a re-run after a crash produces the same
                    receipt and a forged entry fails
``erasure_lease``   the random id of the one erasure run of the speaker under way (absent when
                    none is), with ``erasure_lease_until``, the ISO time (UTC, fixed width) its
                    lease ends by the erasure's clock: one erasure of a speaker at a time
                    (:meth:`ConsentRegistry.take_erasure_lease`)
``samples``         the index of the speaker's samples (a string set of
                    ``<contractor>/<sample_id>``: sample ids are unique only per contractor):
                    every sample admitted for them (:meth:`ConsentRegistry.admit`), so erasure
                    and the sweeper find every copy without a caller-supplied mapping
==================  =============================================================================

Besides one item per speaker, the table holds one **claim item** per admitted sample, keyed
``claim#<contractor>/<sample_id>`` with ``claimant`` (the speaker it belongs to) and
``claim_token`` (the random token of the last call that claimed it),
one **journal item** per erasure-journal entry (``journal#<speaker>#<seq>``), and one **key
item** per speaker with key material (``key#<speaker>``: :data:`KEY_FIELDS` only, the speaker's
key as a KMS ciphertext, see :mod:`securepipe.retention.shredding`). Keeping the key in an item
of its own lets a role create and read keys without any right on the speaker's consent item
(:func:`securepipe.provision.kit_role_policy`); both writes that couple the two items are one
TransactWriteItems (storing a key only while consent is active, shredding it while marking the
speaker erased). ``#`` never occurs in a speaker id, so no speaker's item can take such a key;
registry-wide reads (:meth:`ConsentRegistry.scan`, :meth:`~ConsentRegistry.speakers`,
:meth:`~ConsentRegistry.known_speakers`, :meth:`~ConsentRegistry.sample_index`) leave
well-formed ones out, and report an item under those prefixes which does not parse as one like
any other malformed item. Claims and journal items outlive an erasure (key items do not:
shredding deletes them): they hold only pseudonymous ids (and the journal is the erasure's
evidence), and keeping the claims means a sample id once admitted for one speaker is never
admitted for another.

**Consent gates every write.** :meth:`ConsentRegistry.admit` is the one gate: before anything is
uploaded, ingested or encrypted for a speaker, it refuses (:class:`~securepipe.errors.ConsentError`)
a speaker who is unknown, withdrawn, being erased or erased, or whose retain-until date has been
reached, claims the sample (a conditional write: a sample belongs to one speaker) and records the
sample id in the speaker's index with a conditional write; no registry-wide read.

**Malformed items.** A consent item with a missing or malformed field raises
:class:`~securepipe.errors.ConsentRecordError` naming the speaker and the field;
registry-wide reads (:meth:`ConsentRegistry.scan`) report such items and go on with the rest.

**Dates** are all UTC: an aware datetime becomes a date in UTC, never in local time.

The date after which a speaker's data must be gone (:meth:`ConsentRegistry.retain_until`) is the
earliest of: consent date + term, the retention date on the form, the withdrawal date, and the
last interaction + 3 years (BIPA, 740 ILCS 14/15(a)); for an erased speaker, the erasure date.
Data is kept *before* that date and must be gone *from* it (00:00 UTC). The synthetic manifest
has no separate interaction log: its recordings were made when consent was given, so
``last_interaction`` starts as the consent date and :meth:`ConsentRegistry.record_interaction`
moves it.

DynamoDB API: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/Welcome.html
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from securepipe.errors import (
    ConsentError,
    ConsentRecordError,
    EncryptionError,
    ErasureError,
    ErasureInProgressError,
    InvalidParameterError,
    UnknownSpeakerError,
)
from securepipe.ids import (
    describe_value,
    validate_bucket_name,
    validate_contractor_id,
    validate_kms_key_arn,
    validate_purpose,
    validate_sample_id,
    validate_speaker_id,
)

__all__ = [
    "ANCHOR_PREFIX",
    "BIPA_MAX_DAYS",
    "CLAIM_FIELDS",
    "CLAIM_PREFIX",
    "CONSENT_FIELDS",
    "DEFAULT_TABLE",
    "INDEX_FIELDS",
    "JOURNAL_PREFIX",
    "KEY_CHECK_FIELDS",
    "KEY_FIELDS",
    "KEY_PREFIX",
    "KEY_WRITE_ATTEMPTS",
    "LEASE_FIELDS",
    "MANIFEST_REFERENCE_DAY",
    "STATUSES",
    "ConsentRecord",
    "ConsentRegistry",
    "ReadOnlyConsentGate",
    "WrappedSpeakerKey",
    "expires_at",
    "lease_time",
]

DEFAULT_TABLE = "securepipe-consent"
#: Where, in the erasure anchor bucket (the kit's audit bucket, under Object Lock), every
#: signed erasure-journal head is written, one object per head:
#: ``<prefix>/<speaker>/<count:08d>-<random>`` (see :mod:`securepipe.retention.erasure`).
ANCHOR_PREFIX = "erasure-journal"
#: The key prefix of a sample's claim item, ``claim#<contractor>/<sample_id>`` (attribute
#: ``claimant``: the one speaker the sample belongs to). ``#`` never occurs in a speaker id
#: (:func:`securepipe.ids.validate_speaker_id`), so no consent item can take such a key.
CLAIM_PREFIX = "claim#"
#: The key prefix of an erasure-journal entry, ``journal#<speaker>#<seq>`` (one item per entry).
JOURNAL_PREFIX = "journal#"
#: The key prefix of a speaker's key item, ``key#<speaker>``: the speaker's key material, only
#: as a KMS ciphertext (:mod:`securepipe.retention.shredding`).
KEY_PREFIX = "key#"
#: The attributes of a key item: its key, the wrapped key, its handle, the KMS key that wraps
#: it and when it was made. Nothing else (a role may be allowed exactly these on ``key#`` items).
KEY_FIELDS = ("speaker", "wrapped_key", "key_id", "key_arn", "key_created_at")
#: The attributes of a speaker's item that storing a key tests (the ConditionCheck of
#: :meth:`ConsentRegistry.store_wrapped_key`): the item exists, its status is active, it was
#: never erased, and it holds no key in the place earlier releases kept it.
KEY_CHECK_FIELDS = ("speaker", "status", "erased_at", "key_arn")
#: How many times a write coupling a key item and a speaker item is retried when the items
#: change between the read and the transaction (a concurrent erasure or key creation).
KEY_WRITE_ATTEMPTS = 5
#: The attributes the consent gate reads (:meth:`ConsentRegistry.check_consent`,
#: :meth:`~ConsentRegistry.refuse_if_erased`, hence :meth:`~ConsentRegistry.admit`): one GetItem
#: with exactly this projection, so a role may be allowed to read these and nothing else of a
#: speaker's item (``dynamodb:Attributes``; never the wrapped key, the erasure journal's head
#: or the sample index), see :func:`securepipe.provision.kit_role_policy`.
CONSENT_FIELDS = ("speaker", "contractor", "purpose", "consent_date", "term_days",
                  "retention_until", "withdrawn", "last_interaction", "status", "erased_at")
#: The attributes of a claim item (``claim#<contractor>/<sample_id>``): its key, its claimant,
#: and ``claim_token``, a random token of the last call that claimed it
#: (:meth:`ConsentRegistry.admit` releases a claim it created only while the token is still
#: its own: finding F4).
CLAIM_FIELDS = ("speaker", "claimant", "claim_token")
#: The attributes :meth:`ConsentRegistry.admit` writes on a speaker's item: its key (named by
#: the write's condition) and the ``samples`` index. Nothing else of the speaker's item.
INDEX_FIELDS = ("speaker", "samples")
#: The attributes of a speaker's item that hold the erasure lease: the holding run's random id
#: and the ISO time its lease ends (see :meth:`ConsentRegistry.take_erasure_lease`).
LEASE_FIELDS = ("erasure_lease", "erasure_lease_until")
#: The longest erasure lease a run may take (a day), so a crashed run blocks re-runs for at
#: most this. A lease ending later (a run whose clock was far ahead) is still honoured: taking
#: it could take a live run's lease from a clock far behind; an operator removes it.
MAX_LEASE_SECONDS = 86_400
_LEASE_ID = re.compile(r"[0-9a-f]{32}")
_LEASE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+00:00")
#: BIPA: destroy within 3 years of the individual's last interaction (740 ILCS 14/15(a)).
BIPA_MAX_DAYS = 1095
STATUSES = ("active", "withdrawn", "erasing", "erasure-held", "erased")
#: The longest consent term the registry accepts (100 years): beyond it is a typo or an attack,
#: and date arithmetic on it would overflow.
MAX_TERM_DAYS = 36_500
#: Every date in a record lies in this range (a date near 9999-12-31 would overflow the
#: arithmetic of :meth:`ConsentRecord.retain_until`).
EARLIEST_DATE, LATEST_DATE = dt.date(1970, 1, 1), dt.date(2199, 12, 31)
#: Statuses in which no new key material may be created and nothing new encrypted.
ERASURE_STATUSES = frozenset({"erasing", "erasure-held", "erased"})
_TABLE_NAME_MAX = 255
#: The day the committed synthetic manifest's consent dates are written relative to (the day it
#: was generated). Lessons rebase them onto the day they run: see
#: :meth:`ConsentRegistry.load_manifest_consents`.
MANIFEST_REFERENCE_DAY = dt.date(2026, 11, 26)
#: The one date form the registry stores (``date.isoformat()``), and its timestamps
#: (``datetime.isoformat()`` of an aware datetime, or a ``Z`` suffix).
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})")
_SER = TypeSerializer()
_DESER = TypeDeserializer()


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals and Binary wrappers into plain Python values."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3 Binary
        return bytes(value.value)
    return value


def _as_date(value: dt.date | dt.datetime, name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise InvalidParameterError(f"{name} must be timezone-aware")
        return value.astimezone(dt.UTC).date()
    if isinstance(value, dt.date):
        return value
    raise InvalidParameterError(f"{name} must be a date or an aware datetime")


def expires_at(retain_until: dt.date) -> dt.datetime:
    """The moment data kept "until" ``retain_until`` must be gone: 00:00 UTC that day."""
    return dt.datetime.combine(retain_until, dt.time(0), tzinfo=dt.UTC)


def lease_time(moment: dt.datetime) -> str:
    """An erasure lease's time as stored: ISO 8601 in UTC, always with microseconds, so the
    text is fixed-width ASCII and DynamoDB's string comparison (by character code,
    https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Condition.html) orders
    it as time."""
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise InvalidParameterError("a lease time must be a timezone-aware datetime")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ConsentRecord:
    """One speaker's consent as the registry holds it (never the key material itself)."""

    speaker: str
    contractor: str
    purpose: str
    consent_date: dt.date
    term_days: int
    retention_until: dt.date
    withdrawn: dt.date | None
    last_interaction: dt.date
    status: str
    erased_at: dt.datetime | None
    has_key: bool
    key_id: str | None
    samples: frozenset[str] = frozenset()

    def retain_until(self) -> dt.date:
        """min(consent + term, form's retention date, withdrawal, last interaction + 3 years)."""
        candidates = [
            self.consent_date + dt.timedelta(days=self.term_days),
            self.retention_until,
            self.last_interaction + dt.timedelta(days=BIPA_MAX_DAYS),
        ]
        if self.withdrawn is not None:
            candidates.append(self.withdrawn)
        if self.erased_at is not None:
            candidates.append(self.erased_at.astimezone(dt.UTC).date())
        return min(candidates)

    def expired(self, at: dt.datetime) -> bool:
        """True once ``at`` reaches 00:00 UTC on :meth:`retain_until`."""
        return at >= expires_at(self.retain_until())

    def refusal(self, at: dt.datetime) -> tuple[str, str] | None:
        """Why consent does not cover a new write at ``at`` (reason code, detail), or ``None``."""
        if self.status in ERASURE_STATUSES:
            return self.status, f"the speaker is {self.status}"
        if self.withdrawn is not None or self.status == "withdrawn":
            return "withdrawn", f"consent withdrawn on {self.withdrawn}"
        if self.status != "active":
            return "status", f"status {self.status!r} is not active"
        if at.astimezone(dt.UTC).date() < self.consent_date:
            return "not-yet", f"consent starts on {self.consent_date}"
        if self.expired(at):
            return "expired", f"retention ended on {self.retain_until()}"
        return None


@dataclass(frozen=True)
class WrappedSpeakerKey:
    """A speaker's key material as stored: a KMS ciphertext, never the plaintext."""

    speaker: str
    key_id: str
    kms_key_arn: str
    blob: bytes


class ConsentRegistry:
    """The consent registry: a DynamoDB table keyed by speaker.

    :param session: a boto3 Session (sandbox or real account).
    :param table: the table name (3-255 of ``[A-Za-z0-9_.-]``).
    :param create: create the table if it does not exist (idempotent; CreateTable,
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_CreateTable.html).
    :param kms_key_arn: with ``create``, encrypt the table at rest under this customer-managed
        key instead of an AWS owned key.
    :param anchor_bucket: the bucket erasure anchors its signed journal heads in (the kit's
        audit bucket, under S3 Object Lock). When given, the consent gate (:meth:`check_consent`,
        hence :meth:`admit`, the writers' re-check and speaker-key creation) refuses a speaker
        with any anchored erasure, whatever the registry item says: an item restored from a
        backup taken before the erasure (status ``active``, a wrapped key) does not bring the
        speaker back, because the anchors live where the registry's writers cannot roll them
        back. Reading them needs ``s3:ListBucketVersions`` on that bucket.

    Backups: point-in-time recovery and on-demand backups of this table keep every attribute,
    including wrapped keys that erasure has removed, until the backup expires. See
    :mod:`securepipe.retention.shredding` and :meth:`backup_exposure`.
    """

    def __init__(self, session: boto3.Session, table: str = DEFAULT_TABLE, *, create: bool = True,
                 kms_key_arn: str | None = None, anchor_bucket: str | None = None) -> None:
        if (not isinstance(table, str) or not 3 <= len(table) <= _TABLE_NAME_MAX
                or not all(c.isascii() and (c.isalnum() or c in "_.-") for c in table)):
            raise InvalidParameterError(f"invalid table name {describe_value(table)}")
        if kms_key_arn is not None:
            validate_kms_key_arn(kms_key_arn)
        self._table = table
        self._ddb = session.client("dynamodb")
        self._anchor_bucket = (None if anchor_bucket is None
                               else validate_bucket_name(anchor_bucket))
        self._s3 = session.client("s3") if anchor_bucket is not None else None
        if create:
            self.ensure_table(kms_key_arn)

    @property
    def table(self) -> str:
        return self._table

    @property
    def anchor_bucket(self) -> str | None:
        return self._anchor_bucket

    def erasure_anchored(self, speaker: str) -> bool:
        """True if any erasure of ``speaker`` is anchored in :attr:`anchor_bucket` (one
        ListObjectVersions of ``erasure-journal/<speaker>/``: every version and delete marker,
        so a delete marker hides nothing); ``False`` without an anchor bucket.

        An anchor's signature is not checked here: an object there can only refuse writes (fail
        closed), and only the eraser may write under that prefix.
        https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html
        """
        validate_speaker_id(speaker)
        if self._anchor_bucket is None or self._s3 is None:
            return False
        out = self._s3.list_object_versions(Bucket=self._anchor_bucket,
                                            Prefix=f"{ANCHOR_PREFIX}/{speaker}/", MaxKeys=1)
        return bool(out.get("Versions") or out.get("DeleteMarkers"))

    # -- the table -----------------------------------------------------------------------------
    def ensure_table(self, kms_key_arn: str | None = None) -> None:
        """Create the table (on-demand billing) unless it exists, and wait until it is active."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeySchema": [{"AttributeName": "speaker", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "speaker", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "Tags": [{"Key": "securepipe", "Value": "consent"}],
        }
        if kms_key_arn is not None:
            kwargs["SSESpecification"] = {"Enabled": True, "SSEType": "KMS",
                                          "KMSMasterKeyId": kms_key_arn}
        try:
            self._ddb.create_table(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
        self._ddb.get_waiter("table_exists").wait(
            TableName=self._table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    def backup_exposure(self) -> str:
        """Say how long backups of this table could still hold a removed wrapped key.

        Reads DescribeContinuousBackups and ListBackups
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Point-in-time-recovery.html).
        """
        parts: list[str] = []
        try:
            desc = self._ddb.describe_continuous_backups(TableName=self._table)[
                "ContinuousBackupsDescription"]
            pitr = desc.get("PointInTimeRecoveryDescription", {})
            if pitr.get("PointInTimeRecoveryStatus") == "ENABLED":
                days = pitr.get("RecoveryPeriodInDays", 35)
                parts.append(f"point-in-time recovery ON: a removed wrapped key stays restorable "
                             f"for up to {days} days")
            else:
                parts.append("point-in-time recovery off")
        except ClientError as exc:
            parts.append(f"point-in-time recovery unknown ({exc.response['Error'].get('Code')})")
        try:
            backups = self._ddb.list_backups(TableName=self._table).get("BackupSummaries", [])
            parts.append(f"{len(backups)} on-demand backup(s)"
                         + (": each keeps removed wrapped keys until it is deleted"
                            if backups else ""))
        except ClientError as exc:
            parts.append(f"on-demand backups unknown ({exc.response['Error'].get('Code')})")
        return "; ".join(parts)

    # -- consent records -----------------------------------------------------------------------
    def load_manifest_consents(self, manifest: Any, *, rebase_to: dt.date | None = None) -> int:
        """Write every speaker's consent from a :class:`~securepipe.data.dataset.Manifest`.

        Idempotent, and never undoes what happened since: only speakers the registry does not
        hold yet are created; an existing item keeps everything, its consent date, term and
        retention date included (so re-running a lesson's load on a later day, whose
        ``rebase_to`` moves every manifest date, never revives a speaker whose term ended), as
        well as its status, key material, erasure record, last interaction and withdrawal (a
        withdrawal in the manifest is recorded, the earliest date kept; a manifest without one
        does not clear the registry's). Returns the number of manifest speakers the registry
        holds (created now or already there). A manifest naming a speaker twice is refused
        (:class:`~securepipe.errors.InvalidParameterError`) before anything is written.

        ``rebase_to``: shift every date by ``rebase_to - MANIFEST_REFERENCE_DAY``, so a lesson
        run on any day sees the same consent timeline relative to that day (the committed
        manifest stays as it is). Lessons pass ``clock.now().date()``.
        """
        speakers = list(manifest.speakers)
        seen: set[str] = set()
        for spk in speakers:
            validate_speaker_id(spk.speaker)
            if spk.speaker in seen:
                raise InvalidParameterError(f"the manifest names speaker {spk.speaker!r} twice; "
                                            "nothing was written")
            seen.add(spk.speaker)
        if rebase_to is not None and (isinstance(rebase_to, dt.datetime)
                                      or not isinstance(rebase_to, dt.date)):
            raise InvalidParameterError("rebase_to must be a date")
        shift = dt.timedelta(0) if rebase_to is None else rebase_to - MANIFEST_REFERENCE_DAY
        count = 0
        for spk in speakers:
            c = spk.consent
            self._put_consent(spk.speaker, spk.contractor, c.purpose, c.consent_date + shift,
                              c.term_days, c.retention_until + shift)
            if c.withdrawn is not None:
                self.withdraw(spk.speaker, c.withdrawn + shift)
            count += 1
        return count

    def _put_consent(self, speaker: str, contractor: str, purpose: str,
                     consent_date: dt.date, term_days: int, retention_until: dt.date) -> None:
        validate_speaker_id(speaker)
        validate_contractor_id(contractor)
        validate_purpose(purpose)
        if (isinstance(term_days, bool) or not isinstance(term_days, int)
                or not 1 <= term_days <= MAX_TERM_DAYS):
            raise InvalidParameterError(
                f"term_days must be an integer from 1 to {MAX_TERM_DAYS}, got {term_days!r}")
        for name, day in (("consent_date", consent_date), ("retention_until", retention_until)):
            if (isinstance(day, dt.datetime) or not isinstance(day, dt.date)
                    or not EARLIEST_DATE <= day <= LATEST_DATE):
                raise InvalidParameterError(
                    f"{name} must be a date from {EARLIEST_DATE} to {LATEST_DATE}")
        try:        # create only: an existing item's consent is what happened, never redated
            self._ddb.update_item(
                TableName=self._table,
                Key={"speaker": {"S": speaker}},
                UpdateExpression=(
                    "SET contractor = :c, purpose = :p, consent_date = :d, term_days = :t, "
                    "retention_until = :r, last_interaction = :d, #status = :active"),
                ConditionExpression="attribute_not_exists(speaker)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":c": {"S": contractor}, ":p": {"S": purpose},
                    ":d": {"S": consent_date.isoformat()}, ":t": {"N": str(term_days)},
                    ":r": {"S": retention_until.isoformat()}, ":active": {"S": "active"},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def _item(self, speaker: str,
              attributes: tuple[str, ...] | None = None) -> dict[str, Any] | None:
        """One item (consistent GetItem), or only ``attributes`` of it: a
        ProjectionExpression with a placeholder per name, so a policy's ``dynamodb:Attributes``
        condition applies to the read (and a reserved word such as ``status`` needs no care)
        (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_GetItem.html)."""
        kwargs: dict[str, Any] = {"TableName": self._table, "Key": {"speaker": {"S": speaker}},
                                  "ConsistentRead": True}
        if attributes is not None:
            kwargs["ProjectionExpression"] = ", ".join(f"#a{n}" for n in range(len(attributes)))
            kwargs["ExpressionAttributeNames"] = {f"#a{n}": a for n, a in enumerate(attributes)}
        item = self._ddb.get_item(**kwargs).get("Item")
        if item is None:
            return None
        return {k: _plain(_DESER.deserialize(v)) for k, v in item.items()}

    def _consent(self, speaker: str) -> ConsentRecord | None:
        """The speaker's consent as the gate reads it: only :data:`CONSENT_FIELDS` (so its
        ``has_key`` is ``False``, ``key_id`` ``None`` and ``samples`` empty whatever the item
        holds: use :meth:`find` for those). ``None`` if the registry has no item."""
        validate_speaker_id(speaker)
        item = self._item(speaker, CONSENT_FIELDS)
        return None if item is None else _record(item)

    def consent_record(self, speaker: str) -> ConsentRecord | None:
        """The speaker's consent as the gate reads it: one consistent GetItem projected on
        :data:`CONSENT_FIELDS` (so ``has_key`` is ``False``, ``key_id`` ``None`` and
        ``samples`` empty whatever the registry holds: use :meth:`find` for those). ``None`` if
        the registry has no item; a malformed one raises
        :class:`~securepipe.errors.ConsentRecordError`."""
        return self._consent(speaker)

    def find(self, speaker: str) -> ConsentRecord | None:
        """The speaker's record, or ``None`` if the registry has none (GetItem of the speaker's
        item, and one of their key item: ``has_key`` and ``key_id`` say whether key material
        exists, in either place).

        A malformed item: :class:`~securepipe.errors.ConsentRecordError` naming the field.
        """
        validate_speaker_id(speaker)
        item = self._item(speaker)
        if item is None:
            return None
        key = self._item(_key_item_key(speaker))
        if key is not None:
            parsed = _key_item_of(key)
            # A malformed key item is still key material as far as erasure is concerned
            # (``has_key``): refusing to read the speaker would let whoever planted it stop
            # their erasure. Using it to encrypt or decrypt is refused (wrapped_key()).
            item = (_with_key(item, parsed) if parsed is not None else
                    {**item, "wrapped_key": key.get("wrapped_key", b""),
                     "key_id": key["key_id"] if isinstance(key.get("key_id"), str) else None})
        return _record(item)

    def get(self, speaker: str) -> ConsentRecord:
        """The speaker's record; :class:`~securepipe.errors.UnknownSpeakerError` if absent."""
        record = self.find(speaker)
        if record is None:
            raise UnknownSpeakerError(f"no consent record for speaker {speaker!r}")
        return record

    def _items(self) -> list[dict[str, Any]]:
        """Every consent item (Scan, ``ConsistentRead``); well-formed claim, journal-entry and
        key items (:func:`_internal`) are the registry's own bookkeeping and are left out, while
        an item under a reserved key that does not parse as one is kept (and reported as
        malformed). A speaker's key item is read into their item (``has_key``, ``key_id``)."""
        raw = self._raw_items()
        keys = {k.speaker: k for k in map(_key_item_of, raw) if k is not None}
        speakers = {item.get("speaker") for item in raw if not _internal(item)}
        out: list[dict[str, Any]] = []
        for item in raw:
            key = _key_item_of(item)
            if key is not None and key.speaker not in speakers:
                # a key item with no speaker beside it (a copy under another name, or left
                # behind): not bookkeeping, reported as a malformed record
                out.append(item)
                continue
            if _internal(item):
                continue
            speaker = item.get("speaker")
            out.append(_with_key(item, keys[speaker]) if isinstance(speaker, str)
                       and speaker in keys else item)
        return out

    def _raw_items(self, attributes: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Every item of the table (Scan, ``ConsistentRead``), or only ``attributes`` of each
        (a ProjectionExpression: journal entries then cost next to nothing to read)."""
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        if attributes is not None:
            kwargs["ProjectionExpression"] = ", ".join(f"#a{n}" for n in range(len(attributes)))
            kwargs["ExpressionAttributeNames"] = {f"#a{n}": a for n, a in enumerate(attributes)}
        items: list[dict[str, Any]] = []
        for page in self._ddb.get_paginator("scan").paginate(**kwargs):
            for item in page.get("Items", []):
                items.append({k: _plain(_DESER.deserialize(v)) for k, v in item.items()})
        return items

    def scan(self) -> tuple[list[ConsentRecord], list[ConsentRecordError]]:
        """Every well-formed record (sorted by speaker), and an error per malformed item (Scan).

        One bad item never stops a registry-wide operation: it is reported here and the rest
        goes on.
        """
        records: list[ConsentRecord] = []
        errors: list[ConsentRecordError] = []
        for item in self._items():
            try:
                records.append(_record(item))
            except ConsentRecordError as exc:
                errors.append(exc)
        return (sorted(records, key=lambda r: r.speaker),
                sorted(errors, key=lambda e: str(e.speaker)))

    def speakers(self) -> list[ConsentRecord]:
        """Every well-formed record (Scan), sorted by speaker; :meth:`scan` also reports the
        malformed ones."""
        return self.scan()[0]

    def known_speakers(self) -> frozenset[str]:
        """Every speaker id the registry has an item for, well-formed or not (Scan)."""
        return frozenset(item["speaker"] for item in self._items()
                         if isinstance(item.get("speaker"), str))

    def sample_index(self) -> dict[tuple[str, str], frozenset[str]]:
        """``(contractor, sample_id) -> speakers`` for every sample any speaker was admitted with.

        Sample ids are unique only per contractor (keys are ``<prefix>/<contractor>/<sample>``),
        so the index is keyed by both. Read (one Scan) from each item's ``samples`` set (entries
        ``<contractor>/<sample_id>``; a bare ``<sample_id>`` written before the contractor was
        recorded counts as the item's own contractor), even an item whose other fields are
        malformed, and from the sample claims (:meth:`admit`). A sample held by two speakers
        (a hand-edited item, or an index written before claims existed) keeps both (a conflict
        stays visible: erasure and the sweeper report its objects as unattributed, never guess
        an owner).
        """
        index: dict[tuple[str, str], set[str]] = {}
        for item in self._raw_items(("speaker", "samples", "contractor", "claimant")):
            claim = _claim_of(item)
            if claim is not None:
                if claim[2] is not None:
                    index.setdefault(claim[:2], set()).add(claim[2])
                continue
            speaker = item.get("speaker")
            samples = item.get("samples")
            if (_is_journal_entry(item) or not isinstance(speaker, str)
                    or speaker.startswith(KEY_PREFIX)
                    or not isinstance(samples, set | list | tuple)):
                continue
            for entry in samples:
                ident = _index_key(entry, item.get("contractor"))
                if ident is not None:
                    index.setdefault(ident, set()).add(speaker)
        return {k: frozenset(v) for k, v in index.items()}

    def claimant(self, contractor: str, sample_id: str) -> str | None:
        """The speaker who holds the claim on ``<contractor>/<sample_id>``, or ``None``
        (one consistent GetItem of the claim item, projected on :data:`CLAIM_FIELDS`)."""
        item = self._item(_claim_key(contractor, sample_id), CLAIM_FIELDS) or {}
        claimant = item.get("claimant")
        return claimant if isinstance(claimant, str) else None

    def _claim(self, speaker: str, contractor: str, sample_id: str,
               token: str) -> tuple[bool, str | None]:
        """Claim one sample for ``speaker``: one conditional UpdateItem on its claim item
        (which creates the item if absent:
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html),
        storing this call's ``token`` as ``claim_token`` whether it creates the claim or finds
        it already the speaker's.

        Returns ``(True, None)`` if this call created the claim, ``(False, None)`` if the
        speaker already held it, ``(False, owner)`` if another speaker does. The condition makes
        the claim atomic: of two speakers claiming one sample at once, exactly one succeeds.
        (``attribute_not_exists(claimant)`` rather than of the key: a claim released by
        :meth:`_release` keeps its item, without a claimant.) The token moves to every call
        that relies on the claim, so a call that created it can release it only while no other
        call has claimed it since (:meth:`_release`).
        """
        try:
            out = self._ddb.update_item(
                TableName=self._table,
                Key={"speaker": {"S": _claim_key(contractor, sample_id)}},
                UpdateExpression=("SET claimant = if_not_exists(claimant, :me), "
                                  "claim_token = :token"),
                ConditionExpression="attribute_not_exists(claimant) OR claimant = :me",
                ExpressionAttributeValues={":me": {"S": speaker}, ":token": {"S": token}},
                ReturnValues="UPDATED_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            # the owner, named from a consistent read; a claim released meanwhile reads as
            # no owner, and the caller still refuses (never admitted on a lost race)
            return False, self.claimant(contractor, sample_id) or "another speaker"
        return "claimant" not in out.get("Attributes", {}), None

    def _release(self, speaker: str, contractor: str, sample_id: str, token: str) -> None:
        """Undo a claim this call created, only while ``speaker`` holds it and its
        ``claim_token`` is still this call's ``token`` (one conditional UpdateItem). If another
        call claimed the sample since (a concurrent admit of the same speaker, which then
        relies on the claim), the token is that call's and nothing is released (finding F4):
        a claim is left in place rather than removed under an admit that succeeded. (If that
        call fails too, the claim stays: the sample stays bound to the speaker, as their index
        entry does, which only ever helps erasure.)"""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"speaker": {"S": _claim_key(contractor, sample_id)}},
                UpdateExpression="REMOVE claimant, claim_token",
                ConditionExpression="claimant = :me AND claim_token = :token",
                ExpressionAttributeValues={":me": {"S": speaker}, ":token": {"S": token}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def check_consent(self, speaker: str, at: dt.datetime) -> ConsentRecord:
        """The speaker's record if consent covers a new write at ``at``; otherwise
        :class:`~securepipe.errors.ConsentError` (unknown, withdrawn, erasing, erased, expired,
        not yet started, or a malformed record).

        One consistent GetItem projected on :data:`CONSENT_FIELDS` (and with an anchor bucket
        one ListObjectVersions): the record returned carries no key or index fields."""
        validate_speaker_id(speaker)
        if not isinstance(at, dt.datetime) or at.tzinfo is None:
            raise InvalidParameterError("at must be a timezone-aware datetime")
        try:
            record = self._consent(speaker)
        except ConsentRecordError as exc:
            raise ConsentError(speaker, "malformed-record", str(exc)) from None
        if record is None:
            raise ConsentError(speaker, "unknown", "the registry has no consent record")
        refusal = record.refusal(at)
        if refusal is not None:
            raise ConsentError(speaker, *refusal)
        self._refuse_if_anchored(speaker, f" (the registry item says {record.status!r}: "
                                          "restored or rolled back)")
        return record

    def _refuse_if_anchored(self, speaker: str, note: str = "") -> None:
        """Refuse a speaker whose erasure is anchored in the anchor bucket, or when the anchors
        cannot be read (fail closed)."""
        try:
            anchored = self.erasure_anchored(speaker)
        except ClientError as exc:       # cannot tell: refuse (fail closed)
            raise ConsentError(speaker, "anchors-unreadable", (
                f"the erasure anchors in s3://{self._anchor_bucket} could not be read "
                f"({exc.response.get('Error', {}).get('Code')})")) from None
        if anchored:
            raise ConsentError(speaker, "erased", (
                f"an erasure of this speaker is anchored in s3://{self._anchor_bucket}/"
                f"{ANCHOR_PREFIX}/{speaker}/{note}"))

    def refuse_if_erased(self, speaker: str) -> None:
        """Refuse (:class:`~securepipe.errors.ConsentError`) a speaker being or already erased,
        whatever else consent says: the record's status is ``erasing``, ``erasure-held`` or
        ``erased`` (or it has ``erased_at``), or an erasure is anchored in
        :attr:`anchor_bucket`. A malformed record or unreadable anchors refuse too (fail
        closed); a speaker with no record passes (consent itself is not checked here).

        For writers that checked consent elsewhere (``upload_sample(consent=
        CONSENT_NOT_CHECKED, erasures=registry)``): nothing is ever written for an erased
        person. One GetItem, and with an anchor bucket one ListObjectVersions.
        """
        validate_speaker_id(speaker)
        try:
            record = self._consent(speaker)
        except ConsentRecordError as exc:
            raise ConsentError(speaker, "malformed-record", str(exc)) from None
        if record is not None and (record.status in ERASURE_STATUSES
                                   or record.erased_at is not None):
            raise ConsentError(speaker, record.status, f"the speaker is {record.status}")
        self._refuse_if_anchored(speaker)

    def admit(self, speaker: str, sample_id: str, *, contractor: str,
              at: dt.datetime) -> ConsentRecord:
        """The consent gate for one sample: check consent covers it, claim it, and index it.

        The index entry is exactly ``<contractor>/<sample_id>`` of the object key the sample
        is written under (``raw/<contractor>/<sample_id>``): sample ids are unique only per
        contractor, and a speaker may record through any contractor, so the caller names it.

        Refuses (:class:`~securepipe.errors.ConsentError`) as :meth:`check_consent` does
        (GetItem, and with an anchor bucket one ListObjectVersions). Then claims the sample:
        one conditional UpdateItem on the claim item ``claim#<contractor>/<sample_id>``
        (``SET claimant = if_not_exists(claimant, :me), claim_token = :token`` if unclaimed
        or already this speaker's), so of two speakers admitting one sample at once exactly
        one wins and the other is refused with reason ``sample-conflict`` naming the owner;
        never both admitted. Then adds the entry to the speaker's ``samples`` set (``ADD``,
        idempotent:
        https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html)
        with an UpdateItem that names nothing but the key and ``samples``
        (:data:`INDEX_FIELDS`), and checks consent again (one more GetItem), so a withdrawal or
        an erasure that lands between the first check and the index write still refuses with
        reason ``changed`` (a claim this call created is released, unless another admit has
        claimed the sample since and relies on it: the claim carries the token of the last
        call that claimed it; the index entry stays, which only ever helps erasure find data).
        The index write is not conditional on the status: a condition naming ``status``
        would need the writer's policy to allow that attribute,
        and ``dynamodb:Attributes`` cannot tell a condition from a write. No Scan: the cost of
        one admit does not grow with the registry.

        Together, what admit sends fits a role allowed exactly: GetItem of
        :data:`CONSENT_FIELDS` on speaker items, GetItem and UpdateItem of
        :data:`CLAIM_FIELDS` on ``claim#`` items, UpdateItem of :data:`INDEX_FIELDS` on speaker
        items (the kit's ``ingest`` role, :func:`securepipe.provision.kit_role_policy`).

        Claims are kept when the speaker is erased (they hold only pseudonymous ids): a sample
        id once admitted for a speaker is never re-used for another.
        """
        validate_sample_id(sample_id)
        validate_contractor_id(contractor)
        record = self.check_consent(speaker, at)
        entry = _index_entry(contractor, sample_id)
        token = _claim_token()
        created, owner = self._claim(speaker, contractor, sample_id, token)
        if owner is not None:
            raise ConsentError(speaker, "sample-conflict", (
                f"sample {contractor}/{sample_id} is already claimed by {owner!r}; a sample "
                "belongs to one speaker"))
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"speaker": {"S": speaker}},
                UpdateExpression="ADD samples :s",
                ConditionExpression="attribute_exists(speaker)",
                ExpressionAttributeValues={":s": {"SS": [entry]}},
            )
            self.check_consent(speaker, at)
        except (ClientError, ConsentError) as exc:
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get(
                    "Code") != "ConditionalCheckFailedException":
                raise
            if created:
                self._release(speaker, contractor, sample_id, token)
            raise ConsentError(speaker, "changed", "consent changed while admitting "
                               f"{sample_id!r}") from None
        return record

    def index_samples(self, speaker: str, sample_ids: list[str], *,
                      contractor: str | None = None) -> None:
        """Claim and add sample ids (of ``contractor``, default the speaker's) to a known
        speaker's index without a consent check.

        For backfilling the index from records of data written before it existed (e.g. a
        manifest, or an index written before claims existed): indexing only ever helps erasure
        find data; it admits nothing new. Each sample is claimed as :meth:`admit` claims it (one
        conditional UpdateItem per sample, no Scan). A sample another speaker already claims is
        refused (:class:`~securepipe.errors.InvalidParameterError`), and the claims this call
        made are released: a backfill never claims another speaker's data and indexes nothing
        when it refuses. (An object whose metadata names another speaker is never erased for
        this one in any case.)
        """
        validate_speaker_id(speaker)
        ids = sorted({validate_sample_id(s) for s in sample_ids})
        if not ids:
            return
        record = self.get(speaker)
        owner = validate_contractor_id(contractor) if contractor is not None else record.contractor
        made: list[str] = []
        taken: list[str] = []
        token = _claim_token()
        for sample in ids:
            created, holder = self._claim(speaker, owner, sample, token)
            if holder is not None:
                taken.append(sample)
                break
            if created:
                made.append(sample)
        if taken:
            for sample in made:
                self._release(speaker, owner, sample, token)
            raise InvalidParameterError(
                f"sample {taken[0]} of contractor {owner!r} belongs to another speaker; "
                "nothing was indexed")
        try:
            self._ddb.update_item(
                TableName=self._table, Key={"speaker": {"S": speaker}},
                UpdateExpression="ADD samples :s", ConditionExpression="attribute_exists(speaker)",
                ExpressionAttributeValues={":s": {"SS": [_index_entry(owner, s) for s in ids]}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise UnknownSpeakerError(f"no consent record for speaker {speaker!r}") from None
            raise

    def retain_until(self, speaker: str) -> dt.date:
        """The last date the speaker's data may be kept *before* (see the module docstring)."""
        return self.get(speaker).retain_until()

    def withdraw(self, speaker: str, when: dt.date | dt.datetime) -> ConsentRecord:
        """Record that the speaker withdrew consent on ``when`` (the earliest date is kept).

        The status becomes ``withdrawn`` unless an erasure is already under way or done.
        Unknown speaker: :class:`~securepipe.errors.UnknownSpeakerError`.
        """
        validate_speaker_id(speaker)
        day = _as_date(when, "when")
        current = self.get(speaker)
        earliest = day if current.withdrawn is None else min(day, current.withdrawn)
        status = "withdrawn" if current.status in ("active", "withdrawn") else current.status
        self._update(speaker, "SET withdrawn = :w, #status = :s",
                     {":w": earliest.isoformat(), ":s": status}, names={"#status": "status"})
        return self.get(speaker)

    def record_interaction(self, speaker: str, when: dt.date | dt.datetime) -> ConsentRecord:
        """Move the speaker's last interaction forward to ``when`` (never backwards)."""
        validate_speaker_id(speaker)
        day = _as_date(when, "when")
        current = self.get(speaker)
        if day > current.last_interaction:
            self._update(speaker, "SET last_interaction = :d", {":d": day.isoformat()})
        return self.get(speaker)

    def longest_term_days(self) -> int:
        """The longest consented term of any speaker, capped at :data:`BIPA_MAX_DAYS`."""
        terms = [r.term_days for r in self.speakers()]
        return min(max(terms, default=1), BIPA_MAX_DAYS)

    def backup_retention_days(self) -> int | None:
        """How many days a backup of this table can still hold a removed wrapped key.

        ``0``: no point-in-time recovery and no on-demand backup; the PITR period (1-35 days)
        when it is on; ``None`` (unbounded) when an on-demand backup exists, which keeps
        everything until someone deletes it, or when the answer cannot be read (fail closed).
        DescribeContinuousBackups, ListBackups.
        """
        try:
            desc = self._ddb.describe_continuous_backups(TableName=self._table)[
                "ContinuousBackupsDescription"]
            backups = self._ddb.list_backups(TableName=self._table).get("BackupSummaries", [])
        except ClientError:
            return None
        if backups:
            return None
        pitr = desc.get("PointInTimeRecoveryDescription", {})
        if pitr.get("PointInTimeRecoveryStatus") == "ENABLED":
            return int(pitr.get("RecoveryPeriodInDays", 35))
        return 0

    # -- key material (used by securepipe.retention.shredding)
    # -------------------------------------------
    def wrapped_key(self, speaker: str) -> tuple[WrappedSpeakerKey | None, str]:
        """The speaker's wrapped key (``None`` if never created or shredded) and status.

        Two consistent GetItems: the speaker's item projected on ``speaker`` and ``status``
        (consent fields), then their key item projected on :data:`KEY_FIELDS`, so a role
        allowed those and nothing else of either item can read it. A key still held in the
        speaker's own item (a table written before key items existed) is not read here:
        :meth:`migrate_wrapped_keys` moves it. Unknown speaker:
        :class:`~securepipe.errors.UnknownSpeakerError`; a malformed key item:
        :class:`~securepipe.errors.ConsentRecordError`.
        """
        validate_speaker_id(speaker)
        item = self._item(speaker, ("speaker", "status"))
        if item is None:
            raise UnknownSpeakerError(f"no consent record for speaker {speaker!r}")
        status = _status(item, speaker)
        return self.key_item(speaker), status

    def key_item(self, speaker: str) -> WrappedSpeakerKey | None:
        """The wrapped key in the speaker's key item, or ``None`` if there is none (never
        created, shredded, or no such speaker): one consistent GetItem of ``key#<speaker>``
        projected on :data:`KEY_FIELDS`, and nothing of the speaker's own item (no consent
        field, no status), so a role allowed exactly that read can unwrap keys to decrypt
        (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_GetItem.html).
        A malformed key item: :class:`~securepipe.errors.ConsentRecordError`.
        """
        validate_speaker_id(speaker)
        key = self._item(_key_item_key(speaker), KEY_FIELDS)
        if key is None:
            return None
        parsed = _key_item_of(key)
        if parsed is None:
            raise ConsentRecordError(speaker, "wrapped_key",
                                     f"its key item {KEY_PREFIX}{speaker} is malformed")
        return parsed

    def store_wrapped_key(self, speaker: str, *, key_id: str, kms_key_arn: str, blob: bytes,
                          when: dt.datetime) -> bool:
        """Store a new wrapped key in the speaker's key item, only if they have none, their
        consent is active and they were never erased.

        One TransactWriteItems
        (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html):
        a ConditionCheck on the speaker's item (exists, ``status = active``, no ``erased_at``,
        no key kept in the item itself by an earlier release, tested on its ``key_arn`` and
        never on the blob, which would be an oracle on it; it names only
        :data:`KEY_CHECK_FIELDS`) and a Put of the
        key item (:data:`KEY_FIELDS` only) conditioned on ``attribute_not_exists``, so an
        existing key is never replaced (that would orphan every ciphertext made with it) and
        no key is stored for a speaker an erasure has reached, whatever runs concurrently.
        IAM authorises the two as ``dynamodb:ConditionCheckItem`` and ``dynamodb:PutItem``
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).

        Returns ``False`` (and stores nothing) if a condition does not hold, or the transaction
        met a concurrent one (``TransactionConflict``); the caller re-reads.
        """
        validate_speaker_id(speaker)
        validate_kms_key_arn(kms_key_arn)
        if not isinstance(blob, bytes) or not blob:
            raise InvalidParameterError("the wrapped key must be non-empty bytes")
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise InvalidParameterError(f"invalid key id {describe_value(key_id)}")
        if not isinstance(when, dt.datetime) or when.tzinfo is None:
            raise InvalidParameterError("when must be a timezone-aware datetime")
        try:
            self._ddb.transact_write_items(TransactItems=[
                {"ConditionCheck": {
                    "TableName": self._table, "Key": {"speaker": {"S": speaker}},
                    "ConditionExpression": (
                        "attribute_exists(speaker) AND #status = :active AND "
                        "attribute_not_exists(erased_at) AND attribute_not_exists(key_arn)"),
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":active": {"S": "active"}}}},
                {"Put": {
                    "TableName": self._table,
                    "Item": {"speaker": {"S": _key_item_key(speaker)}, "wrapped_key": {"B": blob},
                             "key_id": {"S": key_id}, "key_arn": {"S": kms_key_arn},
                             "key_created_at": {"S": when.isoformat()}},
                    "ConditionExpression": "attribute_not_exists(speaker)"}},
            ])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False
            raise
        return True

    def remove_wrapped_key(self, speaker: str, when: dt.datetime, *,
                           status: str = "erased") -> dict[str, Any]:
        """Delete the speaker's key material and mark them erased; return what was deleted
        (``wrapped_key``, ``key_id``, ``key_arn``; empty if there was none).

        Reads the key item and the speaker's item (consistent GetItems), then one
        TransactWriteItems: a Delete of the key item conditioned on ``wrapped_key`` equal to
        the blob read (so what is returned, and fingerprinted by the shredding evidence, is
        exactly what was deleted), or, with no key item, a ConditionCheck that none appeared;
        and an UpdateItem of the speaker's item (``SET status, erased_at``, the deleted key's
        handle kept as ``key_id``, ``REMOVE wrapped_key``: a key kept in the item itself by an
        earlier release goes too, conditioned on being the one read). All or nothing: there is
        no moment at which the key is gone and the speaker not marked, or the reverse. If
        either item changed in between (a concurrent erasure or key creation), it reads again,
        up to :data:`KEY_WRITE_ATTEMPTS` times, then raises
        :class:`~securepipe.errors.ErasureError` (re-run the erasure).

        ``status="erasing"`` (a rolled-back erasure journal) marks the speaker ``erasing``
        instead, unless they are already ``erased`` (checked in the same transaction).
        Unknown speaker: :class:`~securepipe.errors.UnknownSpeakerError`.
        """
        if status not in ("erased", "erasing"):
            raise InvalidParameterError("status must be 'erased' or 'erasing'")
        validate_speaker_id(speaker)
        key_name = _key_item_key(speaker)
        for _ in range(KEY_WRITE_ATTEMPTS):
            item = self._item(speaker, ("speaker", "status", "wrapped_key", "key_id", "key_arn"))
            if item is None:
                raise UnknownSpeakerError(f"no consent record for speaker {speaker!r}")
            key = self._item(key_name)
            mark = "erased" if status == "erased" or item.get("status") == "erased" else "erasing"
            old: dict[str, Any] = {}
            names = {"#status": "status"}
            values: dict[str, Any] = {":s": {"S": mark}, ":t": {"S": when.isoformat()}}
            key_action: dict[str, Any]
            if key is None:
                key_action = {"ConditionCheck": {
                    "TableName": self._table, "Key": {"speaker": {"S": key_name}},
                    "ConditionExpression": "attribute_not_exists(speaker)"}}
            else:
                blob = key.get("wrapped_key")
                if isinstance(blob, bytes):
                    check = {"ConditionExpression": "wrapped_key = :b",
                             "ExpressionAttributeValues": {":b": {"B": blob}}}
                    old = {k: key.get(k) for k in ("wrapped_key", "key_id", "key_arn")}
                else:
                    # A malformed key item (a blob of another type, a missing handle): deleted
                    # all the same, whatever it holds. No fingerprint: it is not a key the kit
                    # made, and no valid key can be stored meanwhile (the store's check needs
                    # status active, and an erasure has marked the speaker erasing first).
                    check = {"ConditionExpression": "attribute_exists(speaker)"}
                    old = {"malformed_key_item": True}
                key_action = {"Delete": {"TableName": self._table,
                                         "Key": {"speaker": {"S": key_name}}, **check}}
            legacy = item.get("wrapped_key")
            condition = "attribute_exists(speaker)"
            if isinstance(legacy, bytes):
                condition += " AND wrapped_key = :legacy"
                values[":legacy"] = {"B": legacy}
                if "wrapped_key" not in old:
                    old |= {k: item.get(k) for k in ("wrapped_key", "key_id", "key_arn")}
            else:
                condition += " AND attribute_not_exists(wrapped_key)"
            if mark == "erasing":          # never turn an erased speaker back to erasing
                condition += " AND #status <> :erased"
                values[":erased"] = {"S": "erased"}
            expression = "REMOVE wrapped_key SET #status = :s, erased_at = :t"
            if isinstance(old.get("key_id"), str):
                expression += ", key_id = :k"
                values[":k"] = {"S": old["key_id"]}
            try:
                self._ddb.transact_write_items(TransactItems=[key_action, {"Update": {
                    "TableName": self._table, "Key": {"speaker": {"S": speaker}},
                    "UpdateExpression": expression, "ConditionExpression": condition,
                    "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                continue                    # something changed since the read: read again
            shredded = [b for b in (old.get("wrapped_key"), legacy) if isinstance(b, bytes)]
            if shredded:
                old["copies_deleted"], old["copies_kept"] = self._delete_key_copies(shredded)
            return {k: v for k, v in old.items() if v is not None}
        raise ErasureError(
            f"the key material of speaker {speaker!r} kept changing while it was being "
            f"shredded ({KEY_WRITE_ATTEMPTS} attempts); nothing was shredded by the last one, "
            "re-run the erasure")

    def _delete_key_copies(self, blobs: list[bytes]) -> tuple[list[str], list[str]]:
        """Delete every key item of no registered speaker holding one of ``blobs`` in any of
        its attributes (as bytes, base64 or hex, also inside a list, set or map): a copy made
        under another name by a role that may create key items. Returns ``(deleted, kept)``:
        a registered speaker's own key item holding the blob is kept and named, never deleted
        (it may be that speaker's key, planted as this one's). One Scan, then a DeleteItem per
        copy conditioned on it still existing
        (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_DeleteItem.html).
        Copies kept outside key items, or encoded otherwise, cannot be seen from here."""
        items = self._raw_items()
        speakers = {i.get("speaker") for i in items if not _internal(i)} - {None}
        forms = [f for b in blobs for f in (b, base64.b64encode(b).decode(), b.hex())]
        deleted: list[str] = []
        kept: list[str] = []
        for item in items:
            name = item.get("speaker")
            if not isinstance(name, str) or not name.startswith(KEY_PREFIX):
                continue
            if not any(_holds(v, f) for k, v in item.items() if k != "speaker" for f in forms):
                continue
            if name[len(KEY_PREFIX):] in speakers:
                kept.append(name)
                continue
            try:
                self._ddb.delete_item(TableName=self._table, Key={"speaker": {"S": name}},
                                      ConditionExpression="attribute_exists(speaker)")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                continue
            deleted.append(name)
        return sorted(deleted), sorted(kept)

    def migrate_wrapped_keys(self) -> list[str]:
        """Move every key kept in a speaker's own item (tables written before key items
        existed) into the speaker's key item; returns the speakers moved.

        Per speaker, one TransactWriteItems: a Put of the key item conditioned on none existing
        and an UpdateItem removing ``wrapped_key``, ``key_arn`` and ``key_created_at`` from the
        speaker's item conditioned on the blob being the one read, so the key is never in
        neither place nor changed on the way. A speaker who has a key item already keeps both
        (not moved, not returned): shredding removes both. An administrator's operation (one
        Scan); no kit role may run it.
        """
        moved: list[str] = []
        for item in self._raw_items(("speaker", "wrapped_key")):
            speaker, blob = item.get("speaker"), item.get("wrapped_key")
            if _internal(item) or (isinstance(speaker, str) and "#" in speaker):
                continue
            if not isinstance(speaker, str) or not isinstance(blob, bytes):
                continue
            raw = self._item(speaker, ("speaker", "wrapped_key", "key_id", "key_arn",
                                       "key_created_at"))
            if raw is None or raw.get("wrapped_key") != blob:
                continue
            if not isinstance(raw.get("key_id"), str) or not isinstance(raw.get("key_arn"), str):
                continue
            put = {"speaker": {"S": _key_item_key(speaker)}, "wrapped_key": {"B": blob},
                   "key_id": {"S": raw["key_id"]}, "key_arn": {"S": raw["key_arn"]}}
            if isinstance(raw.get("key_created_at"), str):
                put["key_created_at"] = {"S": raw["key_created_at"]}
            try:
                self._ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": self._table, "Item": put,
                             "ConditionExpression": "attribute_not_exists(speaker)"}},
                    {"Update": {"TableName": self._table, "Key": {"speaker": {"S": speaker}},
                                "UpdateExpression": "REMOVE wrapped_key, key_arn, key_created_at",
                                "ConditionExpression": "wrapped_key = :b",
                                "ExpressionAttributeValues": {":b": {"B": blob}}}}])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                continue
            moved.append(speaker)
        return moved

    # -- erasure bookkeeping (used by securepipe.retention.erasure)
    # --------------------------------------
    def begin_erasure(self, speaker: str, when: dt.datetime,
                      head: Mapping[str, Any] | None = None) -> ConsentRecord:
        """Mark an erasure under way (``erasing``), unless the speaker is already erased.

        ``head``: the erasure journal's signed head for an empty journal, stored (only if none
        is) in the same UpdateItem (see :mod:`securepipe.retention.erasure`).
        """
        current = self.get(speaker)
        if current.status != "erased":
            expression = ("SET #status = :s, erasure_requested_at = "
                          "if_not_exists(erasure_requested_at, :t)")
            values: dict[str, Any] = {":s": {"S": "erasing"}, ":t": {"S": when.isoformat()}}
            if head is not None:
                expression += ", erasure_head = if_not_exists(erasure_head, :h)"
                values[":h"] = _SER.serialize(dict(head))
            self._ddb.update_item(
                TableName=self._table, Key={"speaker": {"S": speaker}},
                UpdateExpression=expression, ConditionExpression="attribute_exists(speaker)",
                ExpressionAttributeNames={"#status": "status"}, ExpressionAttributeValues=values)
        return self.get(speaker)

    def take_erasure_lease(self, speaker: str, lease: str, *, now: dt.datetime,
                           until: dt.datetime) -> None:
        """Take the speaker's erasure lease for run ``lease`` (32 hex digits) until ``until``:
        one conditional UpdateItem on the speaker's item, allowed only if no lease is held,
        the held one ended by ``now`` (the erasure's clock), or it is already ``lease``'s.

        A live lease of another run raises :class:`~securepipe.errors.ErasureInProgressError`
        naming the speaker and when that lease ends; nothing is changed. A lease attribute that
        does not parse as one (planted or corrupted) is no lease: it is replaced, conditioned on
        it being unchanged, so it cannot block an erasure. UpdateItem with a
        ConditionExpression:
        https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
        """
        validate_speaker_id(speaker)
        if not isinstance(lease, str) or not _LEASE_ID.fullmatch(lease):
            raise InvalidParameterError("an erasure lease id is 32 lowercase hex digits")
        start, end = lease_time(now), lease_time(until)
        if end <= start:
            raise InvalidParameterError("an erasure lease must end after it is taken")
        names = {"#l": "erasure_lease", "#u": "erasure_lease_until"}
        # attribute_type first: an end of another type (planted) is compared with nothing
        usual: tuple[str, dict[str, Any]] = (
            "attribute_exists(speaker) AND (attribute_not_exists(#l) OR #l = :me OR "
            "(attribute_type(#u, :string) AND #u <= :now))",
            {":now": {"S": start}, ":string": {"S": "S"}})
        replacing: tuple[str, dict[str, Any]] | None = None
        for _ in range(KEY_WRITE_ATTEMPTS):
            condition, values = replacing or usual
            replacing = None
            try:
                self._ddb.update_item(
                    TableName=self._table, Key={"speaker": {"S": speaker}},
                    UpdateExpression="SET #l = :me, #u = :until", ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":me": {"S": lease}, ":until": {"S": end},
                                               **values})
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
            raw = self._ddb.get_item(
                TableName=self._table, Key={"speaker": {"S": speaker}}, ConsistentRead=True,
                ProjectionExpression="speaker, #l, #u", ExpressionAttributeNames=names
            ).get("Item")
            if raw is None:
                raise UnknownSpeakerError(f"no consent record for speaker {speaker!r}")
            holder, held_until = raw.get("erasure_lease"), raw.get("erasure_lease_until")
            holder_s = holder.get("S") if isinstance(holder, dict) else None
            until_s = held_until.get("S") if isinstance(held_until, dict) else None
            if (holder is not None and isinstance(holder_s, str) and _LEASE_ID.fullmatch(holder_s)
                    and isinstance(until_s, str) and _LEASE_TIME.fullmatch(until_s)):
                if holder_s != lease and until_s > start:
                    raise ErasureInProgressError(
                        speaker, until_s, "this run was refused before deleting anything; "
                        "re-run after the lease ends")
                continue            # changed since the write was refused: try again
            # not a lease the kit wrote: replace it, only if it is still exactly what was read
            parts = [f"{ref} = :old{ref[1]}" if raw.get(attr) is not None
                     else f"attribute_not_exists({ref})"
                     for ref, attr in (("#l", "erasure_lease"), ("#u", "erasure_lease_until"))]
            old = {f":old{ref[1]}": raw[attr]
                   for ref, attr in (("#l", "erasure_lease"), ("#u", "erasure_lease_until"))
                   if raw.get(attr) is not None}
            replacing = ("attribute_exists(speaker) AND " + " AND ".join(parts), old)
        raise ErasureError(f"the erasure lease of {speaker!r} kept changing while this run "
                           "tried to take it; nothing was deleted, re-run")

    def renew_erasure_lease(self, speaker: str, lease: str, *, until: dt.datetime) -> None:
        """Move the end of run ``lease``'s erasure lease to ``until``, only while the run still
        holds it (a conditional UpdateItem). A lease that expired and was taken by another run
        raises :class:`~securepipe.errors.ErasureInProgressError` (the run must stop before it
        deletes anything more)."""
        if not self._while_leased(speaker, lease, "SET #u = :until",
                                  {":until": {"S": lease_time(until)}}):
            held = self.erasure_lease(speaker)
            raise ErasureInProgressError(
                speaker, None if held is None else held[1],
                "this run's lease expired and was taken (or removed) by another run; it stopped "
                "before deleting anything more, re-run after that lease ends")

    def release_erasure_lease(self, speaker: str, lease: str) -> bool:
        """Remove run ``lease``'s erasure lease, only while it still holds it (a conditional
        UpdateItem); ``False`` if it no longer did."""
        return self._while_leased(speaker, lease, "REMOVE #l, #u", {})

    def _while_leased(self, speaker: str, lease: str, expression: str,
                      values: Mapping[str, Any]) -> bool:
        """One UpdateItem of the speaker's lease attributes (``#l``, ``#u``), conditioned on run
        ``lease`` still holding it; ``False`` if it no longer did."""
        validate_speaker_id(speaker)
        try:
            self._ddb.update_item(
                TableName=self._table, Key={"speaker": {"S": speaker}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(speaker) AND #l = :me",
                ExpressionAttributeNames={"#l": "erasure_lease", "#u": "erasure_lease_until"},
                ExpressionAttributeValues={":me": {"S": lease}, **values})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def erasure_lease(self, speaker: str) -> tuple[str, str] | None:
        """``(run id, ends at)`` of the speaker's erasure lease as stored, or ``None`` if none
        (one consistent GetItem projected on :data:`LEASE_FIELDS`)."""
        validate_speaker_id(speaker)
        item = self._item(speaker, LEASE_FIELDS) or {}
        holder, until = item.get("erasure_lease"), item.get("erasure_lease_until")
        if holder is None and until is None:
            return None
        return str(holder), str(until)

    def hold_erasure(self, speaker: str, reason: str) -> None:
        """Record that erasure is blocked by a hold (``erasure-held``); the key is kept."""
        self._update(speaker, "SET #status = :s, erasure_hold_reason = :r",
                     {":s": "erasure-held", ":r": reason[:1000]}, names={"#status": "status"})

    def put_journal_entry(self, speaker: str, entry: Mapping[str, Any]) -> bool:
        """Write one (signed) erasure-journal entry as its own item,
        ``journal#<speaker>#<seq>``, only if no entry holds that position yet (one conditional
        UpdateItem). ``False`` if one does (another erasure's, or one a crashed run wrote
        before it could move the head): the caller reads and adopts it.

        One item per entry, so a journal of any length fits DynamoDB's 400 KB item limit
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
        """
        validate_speaker_id(speaker)
        seq = int(entry["seq"])
        values = {":" + k: _SER.serialize(v) for k, v in entry.items()
                  if k in _JOURNAL_FIELDS - {"speaker"} and v is not None}
        try:
            self._ddb.update_item(
                TableName=self._table, Key={"speaker": {"S": _journal_key(speaker, seq)}},
                UpdateExpression="SET " + ", ".join(f"#{k[1:]} = {k}" for k in values),
                ConditionExpression="attribute_not_exists(speaker)",
                ExpressionAttributeNames={f"#{k[1:]}": k[1:] for k in values},
                ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def advance_journal_head(self, speaker: str, head: Mapping[str, Any]) -> bool:
        """Replace the speaker's signed journal head by ``head`` (counting one entry more),
        only if the stored head counts ``head["count"] - 1`` entries (a conditional
        UpdateItem); ``False`` if it does not (another erasure moved it first)."""
        try:
            self._ddb.update_item(
                TableName=self._table, Key={"speaker": {"S": speaker}},
                UpdateExpression="SET erasure_head = :h",
                ConditionExpression="attribute_exists(speaker) AND erasure_head.#n = :seq",
                ExpressionAttributeNames={"#n": "count"},
                ExpressionAttributeValues={":h": _SER.serialize(dict(head)),
                                           ":seq": {"N": str(int(head["count"]) - 1)}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def journal_entry(self, speaker: str, seq: int) -> dict[str, Any] | None:
        """Entry ``seq`` of the speaker's erasure journal, or ``None`` (consistent GetItem)."""
        validate_speaker_id(speaker)
        item = self._item(_journal_key(speaker, seq))
        if item is None:
            return None
        item.pop("speaker", None)
        return item

    def set_journal(self, speaker: str, entries: list[Mapping[str, Any]]) -> None:
        """Replace the journal's entries (tests use it to forge entries; the kit never calls
        it). Needs DeleteItem on journal items, which no kit role holds."""
        validate_speaker_id(speaker)
        self._ddb.update_item(
            TableName=self._table, Key={"speaker": {"S": speaker}},
            UpdateExpression="REMOVE erasure_journal",
            ConditionExpression="attribute_exists(speaker)")
        seq = 0
        while self.journal_entry(speaker, seq) is not None:
            self._ddb.delete_item(TableName=self._table,
                                  Key={"speaker": {"S": _journal_key(speaker, seq)}})
            seq += 1
        for entry in entries:
            self.put_journal_entry(speaker, entry)

    def journal(self, speaker: str) -> list[dict[str, Any]]:
        """The speaker's erasure journal (empty if no erasure started)."""
        return self.journal_and_head(speaker)[0]

    def journal_and_head(self, speaker: str) -> tuple[list[dict[str, Any]], Any]:
        """The speaker's erasure journal and its signed head (``None`` if none).

        The entries are read in order, one consistent GetItem each, up to the first position
        with none, before and after the head: they may run past the head's count (entries a
        crashed or concurrent erasure wrote before moving the head), never stop short of it
        unless entries were removed. A journal written inside the speaker's item
        (``erasure_journal``, a list) comes first.
        """
        item = self._item(speaker) or {}
        legacy = item.get("erasure_journal", [])
        if not isinstance(legacy, list):
            return [{"malformed": True}], item.get("erasure_head")
        entries = list(legacy)

        def read_on() -> None:
            while (entry := self.journal_entry(speaker, len(entries))) is not None:
                entries.append(entry)

        # entries, then the head, then entries again: an entry is always written before the
        # head counts it, so a head read this way never counts more entries than were read
        # (while an erasure runs concurrently too)
        read_on()
        head = (self._item(speaker) or {}).get("erasure_head")
        read_on()
        return entries, head

    def _update(self, speaker: str, expression: str, values: Mapping[str, str], *,
                names: Mapping[str, str] | None = None) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"speaker": {"S": speaker}},
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(speaker)",
            "ExpressionAttributeValues": {k: {"S": v} for k, v in values.items()},
        }
        if names:
            kwargs["ExpressionAttributeNames"] = dict(names)
        try:
            self._ddb.update_item(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise UnknownSpeakerError(f"no consent record for speaker {speaker!r}") from None
            raise


class ReadOnlyConsentGate:
    """The consent gate for a writer that may only *read* the registry (the kit's
    ``uploader`` role): ``upload_sample(..., consent=ReadOnlyConsentGate(registry),
    speaker=...)``.

    :meth:`admit` checks consent (:meth:`ConsentRegistry.check_consent`: one GetItem projected
    on :data:`CONSENT_FIELDS`, and with an anchor bucket one ListObjectVersions) and neither
    claims nor indexes the sample: ingest's gate (:meth:`ConsentRegistry.admit`) does, before
    anything derived from the upload is written. :meth:`check_consent` is the registry's, so the
    upload's fence (:func:`securepipe.encryption.upload.fence_write`) re-checks after the write
    as with the full gate. What this gives up, stated plainly: until ingest admits it, a raw
    upload is attributed by its object metadata only, so a *multipart* upload still under way
    when an erasure lists the bucket (no readable metadata yet) is reported unattributed by
    that erasure rather than aborted as the speaker's (the receipt is then not complete), and
    the writer's fence deletes the finished object.
    """

    def __init__(self, registry: ConsentRegistry) -> None:
        if not isinstance(registry, ConsentRegistry):
            raise InvalidParameterError("registry must be a ConsentRegistry")
        self._registry = registry

    def admit(self, speaker: str, sample_id: str, *, contractor: str,
              at: dt.datetime) -> ConsentRecord:
        """Refuse (:class:`~securepipe.errors.ConsentError`) unless consent covers a write
        of ``<contractor>/<sample_id>`` for ``speaker`` at ``at``; writes nothing."""
        validate_sample_id(sample_id)
        validate_contractor_id(contractor)
        return self._registry.check_consent(speaker, at)

    def check_consent(self, speaker: str, at: dt.datetime) -> ConsentRecord:
        """:meth:`ConsentRegistry.check_consent`."""
        return self._registry.check_consent(speaker, at)

    def refuse_if_erased(self, speaker: str) -> None:
        """:meth:`ConsentRegistry.refuse_if_erased`."""
        self._registry.refuse_if_erased(speaker)


def _index_entry(contractor: str, sample_id: str) -> str:
    """The ``samples`` set entry of one sample: ``<contractor>/<sample_id>``."""
    return f"{validate_contractor_id(contractor)}/{validate_sample_id(sample_id)}"


def _journal_key(speaker: str, seq: int) -> str:
    """The key of entry ``seq`` of a speaker's erasure journal: ``journal#<speaker>#<seq>``."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InvalidParameterError(f"journal position must be an integer >= 0, got {seq!r}")
    return f"{JOURNAL_PREFIX}{validate_speaker_id(speaker)}#{seq}"


_JOURNAL_FIELDS = frozenset({"speaker", "seq", "prev", "record", "sig"})
#: A key handle as :class:`~securepipe.retention.shredding.SpeakerKeys` makes them.
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def _key_item_key(speaker: str) -> str:
    """The key of a speaker's key item: ``key#<speaker>``."""
    return KEY_PREFIX + validate_speaker_id(speaker)


def _key_item_of(item: Mapping[str, Any]) -> WrappedSpeakerKey | None:
    """The key a well-formed key item holds (its key names a valid speaker, it has no
    attribute outside :data:`KEY_FIELDS`, a non-empty blob, a key handle and a KMS key
    ARN); ``None`` for anything else (a malformed one is then reported like any malformed
    item)."""
    key = item.get("speaker")
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX) or set(item) - set(KEY_FIELDS):
        return None
    speaker = key[len(KEY_PREFIX):]
    blob, key_id, arn = item.get("wrapped_key"), item.get("key_id"), item.get("key_arn")
    try:
        validate_speaker_id(speaker)
        if not isinstance(arn, str):
            return None
        validate_kms_key_arn(arn)
    except InvalidParameterError:
        return None
    if not isinstance(blob, bytes) or not blob or not isinstance(key_id, str) or not key_id:
        return None
    return WrappedSpeakerKey(speaker, key_id, arn, blob)


def _holds(value: Any, blob: bytes | str) -> bool:
    """True if an attribute's value is ``blob`` or holds it (in a list, set or map)."""
    if isinstance(value, bytes | bytearray | str):
        return value == blob
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds(v, blob) for v in value)
    if isinstance(value, dict):
        return any(_holds(v, blob) for v in value.values())
    return False


def _with_key(item: Mapping[str, Any], key: WrappedSpeakerKey) -> dict[str, Any]:
    """A speaker's item as read, with their key item's key in it (for :func:`_record`)."""
    return {**item, "wrapped_key": key.blob, "key_id": key.key_id, "key_arn": key.kms_key_arn}


def _is_journal_entry(item: Mapping[str, Any]) -> bool:
    """True for a well-formed erasure-journal entry item (key and ``seq`` agree, no other
    attributes); anything else under the reserved prefix is reported as malformed."""
    key = item.get("speaker")
    if (not isinstance(key, str) or not key.startswith(JOURNAL_PREFIX)
            or set(item) - _JOURNAL_FIELDS):
        return False
    speaker, sep, seq = key[len(JOURNAL_PREFIX):].rpartition("#")
    try:
        validate_speaker_id(speaker)
    except InvalidParameterError:
        return False
    return bool(sep) and seq.isdigit() and item.get("seq") == int(seq) and str(int(seq)) == seq


def _internal(item: Mapping[str, Any]) -> bool:
    """A claim, journal-entry or key item: the registry's own bookkeeping, not a speaker."""
    return (_claim_of(item) is not None or _is_journal_entry(item)
            or _key_item_of(item) is not None)


def _claim_token() -> str:
    """A fresh random token for one call's claims (``claim_token``)."""
    return uuid.uuid4().hex


def _claim_key(contractor: str, sample_id: str) -> str:
    """The key of a sample's claim item: ``claim#<contractor>/<sample_id>``."""
    return CLAIM_PREFIX + _index_entry(contractor, sample_id)


def _claim_of(item: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """``(contractor, sample_id, claimant)`` of a well-formed claim item (``claimant`` is
    ``None`` once released); ``None`` for anything else, including an item under a reserved
    key that does not parse as a claim (which registry-wide reads then report as malformed)."""
    key = item.get("speaker")
    if not isinstance(key, str) or not key.startswith(CLAIM_PREFIX):
        return None
    if set(item) - set(CLAIM_FIELDS):
        return None
    contractor, sep, sample = key[len(CLAIM_PREFIX):].rpartition("/")
    claimant = item.get("claimant")
    token = item.get("claim_token")
    try:
        if not sep or (claimant is None and "claimant" in item):
            return None
        if "claim_token" in item and (claimant is None or not isinstance(token, str)
                                      or not token):
            return None
        validate_contractor_id(contractor)
        validate_sample_id(sample)
        if claimant is not None:
            validate_speaker_id(claimant)
    except InvalidParameterError:
        return None
    return contractor, sample, claimant


def _index_key(entry: object, item_contractor: object) -> tuple[str, str] | None:
    """``(contractor, sample_id)`` of a ``samples`` entry; ``None`` if it does not parse."""
    if not isinstance(entry, str):
        return None
    contractor, _, sample = entry.rpartition("/")
    if not contractor:
        contractor = item_contractor if isinstance(item_contractor, str) else ""
    try:
        return validate_contractor_id(contractor), validate_sample_id(sample)
    except InvalidParameterError:
        return None


def _field_date(item: Mapping[str, Any], speaker: str | None, name: str, *,
                required: bool) -> dt.date | None:
    value = item.get(name)
    if value is None:
        if name in item:               # DynamoDB NULL: not the same as absent
            raise ConsentRecordError(speaker, name, "is NULL")
        if required:
            raise ConsentRecordError(speaker, name, "is missing")
        return None
    # exactly YYYY-MM-DD in ASCII digits: date.fromisoformat alone also takes an ISO week
    # date ("2026-W05-3"), a basic form ("20260128") and non-ASCII digits
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ConsentRecordError(speaker, name, "is not an ISO date (YYYY-MM-DD)")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ConsentRecordError(speaker, name, f"is not a valid date: {value!r}") from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ConsentRecordError(speaker, name, f"is outside {EARLIEST_DATE}..{LATEST_DATE}")
    return day


def _field_str(item: Mapping[str, Any], speaker: str | None, name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise ConsentRecordError(speaker, name, "is missing" if value is None
                                 else "is not a non-empty string")
    return value


def _status(item: Mapping[str, Any], speaker: str | None) -> str:
    """The item's status: required (a missing status is never read as ``active``)."""
    status = item.get("status")
    if status is None:
        raise ConsentRecordError(speaker, "status", "is missing")
    if status not in STATUSES:
        raise ConsentRecordError(speaker, "status", f"is not one of {STATUSES}")
    return str(status)


def _record(item: Mapping[str, Any]) -> ConsentRecord:
    """A typed record from a registry item; :class:`ConsentRecordError` names a bad field."""
    raw_speaker = item.get("speaker")
    speaker = raw_speaker if isinstance(raw_speaker, str) else None
    try:
        validate_speaker_id(raw_speaker)
    except InvalidParameterError:
        raise ConsentRecordError(speaker, "speaker", "is not a valid speaker id") from None
    assert speaker is not None
    consent_date = _field_date(item, speaker, "consent_date", required=True)
    retention = _field_date(item, speaker, "retention_until", required=True)
    assert consent_date is not None and retention is not None
    term = item.get("term_days")
    if isinstance(term, bool) or not isinstance(term, int) or not 1 <= term <= MAX_TERM_DAYS:
        raise ConsentRecordError(speaker, "term_days", "is missing" if term is None
                                 else f"is not an integer from 1 to {MAX_TERM_DAYS}")
    status = _status(item, speaker)
    erased = item.get("erased_at")
    erased_at: dt.datetime | None = None
    if erased is None and "erased_at" in item:
        raise ConsentRecordError(speaker, "erased_at", "is NULL")
    if erased is not None:
        if not isinstance(erased, str) or not _ISO_TIMESTAMP.fullmatch(erased):
            raise ConsentRecordError(speaker, "erased_at", "is not an ISO timestamp "
                                     "(YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM)")
        try:
            erased_at = dt.datetime.fromisoformat(erased)
        except ValueError:
            raise ConsentRecordError(speaker, "erased_at", "is not an ISO timestamp") from None
        if erased_at.tzinfo is None:
            raise ConsentRecordError(speaker, "erased_at", "has no time zone")
        if not EARLIEST_DATE <= erased_at.astimezone(dt.UTC).date() <= LATEST_DATE:
            raise ConsentRecordError(speaker, "erased_at",
                                     f"is outside {EARLIEST_DATE}..{LATEST_DATE}")
    samples = item.get("samples") or set()
    if not isinstance(samples, set | list | tuple) or not all(isinstance(s, str)
                                                              for s in samples):
        raise ConsentRecordError(speaker, "samples", "is not a set of sample ids")
    return ConsentRecord(
        speaker=speaker,
        contractor=_field_str(item, speaker, "contractor"),
        purpose=_field_str(item, speaker, "purpose"),
        consent_date=consent_date,
        term_days=term,
        retention_until=retention,
        withdrawn=_field_date(item, speaker, "withdrawn", required=False),
        last_interaction=(_field_date(item, speaker, "last_interaction", required=False)
                          or consent_date),
        status=str(status),
        erased_at=erased_at,
        has_key="wrapped_key" in item,
        key_id=None if item.get("key_id") is None else str(item["key_id"]),
        samples=frozenset(samples),
    )


def refuse_if_erasing(speaker: str, status: str) -> None:
    """Raise :class:`EncryptionError` if no new data may be encrypted for the speaker."""
    if status in ERASURE_STATUSES:
        raise EncryptionError(f"speaker {speaker!r} is {status}: nothing new is encrypted for "
                              "them")
