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
``wrapped_key``     the speaker's key material, *only* as a KMS ciphertext (see
                    :mod:`securepipe.retention.shredding`); removed when the speaker is erased
``erasure_journal`` what an erasure deleted so far (bucket, key, version, SHA-256), so a re-run
                    after a crash still produces a complete receipt
==================  =============================================================================

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

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from securepipe.errors import EncryptionError, InvalidParameterError, UnknownSpeakerError
from securepipe.ids import (
    describe_value,
    validate_contractor_id,
    validate_kms_key_arn,
    validate_purpose,
    validate_speaker_id,
)

__all__ = [
    "BIPA_MAX_DAYS",
    "DEFAULT_TABLE",
    "STATUSES",
    "ConsentRecord",
    "ConsentRegistry",
    "WrappedSpeakerKey",
    "expires_at",
]

DEFAULT_TABLE = "securepipe-consent"
#: BIPA: destroy within 3 years of the individual's last interaction (740 ILCS 14/15(a)).
BIPA_MAX_DAYS = 1095
STATUSES = ("active", "withdrawn", "erasing", "erasure-held", "erased")
#: Statuses in which no new key material may be created and nothing new encrypted.
ERASURE_STATUSES = frozenset({"erasing", "erasure-held", "erased"})
_TABLE_NAME_MAX = 255
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
            candidates.append(self.erased_at.date())
        return min(candidates)

    def expired(self, at: dt.datetime) -> bool:
        """True once ``at`` reaches 00:00 UTC on :meth:`retain_until`."""
        return at >= expires_at(self.retain_until())


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

    Backups: point-in-time recovery and on-demand backups of this table keep every attribute,
    including wrapped keys that erasure has removed, until the backup expires. See
    :mod:`securepipe.retention.shredding` and :meth:`backup_exposure`.
    """

    def __init__(self, session: boto3.Session, table: str = DEFAULT_TABLE, *, create: bool = True,
                 kms_key_arn: str | None = None) -> None:
        if (not isinstance(table, str) or not 3 <= len(table) <= _TABLE_NAME_MAX
                or not all(c.isascii() and (c.isalnum() or c in "_.-") for c in table)):
            raise InvalidParameterError(f"invalid table name {describe_value(table)}")
        if kms_key_arn is not None:
            validate_kms_key_arn(kms_key_arn)
        self._table = table
        self._ddb = session.client("dynamodb")
        if create:
            self.ensure_table(kms_key_arn)

    @property
    def table(self) -> str:
        return self._table

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
    def load_manifest_consents(self, manifest: Any) -> int:
        """Write every speaker's consent from a :class:`~securepipe.data.dataset.Manifest`.

        Idempotent, and never undoes what happened since: an existing item keeps its status,
        key material, erasure record, last interaction and withdrawal (a withdrawal in the
        manifest is recorded; a manifest without one does not clear the registry's). Returns the
        number of speakers written.
        """
        count = 0
        for spk in manifest.speakers:
            c = spk.consent
            self._put_consent(spk.speaker, spk.contractor, c.purpose, c.consent_date,
                              c.term_days, c.retention_until)
            if c.withdrawn is not None:
                self.withdraw(spk.speaker, c.withdrawn)
            count += 1
        return count

    def _put_consent(self, speaker: str, contractor: str, purpose: str,
                     consent_date: dt.date, term_days: int, retention_until: dt.date) -> None:
        validate_speaker_id(speaker)
        validate_contractor_id(contractor)
        validate_purpose(purpose)
        if isinstance(term_days, bool) or not isinstance(term_days, int) or term_days < 1:
            raise InvalidParameterError(f"term_days must be a positive integer, got {term_days!r}")
        self._ddb.update_item(
            TableName=self._table,
            Key={"speaker": {"S": speaker}},
            UpdateExpression=(
                "SET contractor = :c, purpose = :p, consent_date = :d, term_days = :t, "
                "retention_until = :r, last_interaction = if_not_exists(last_interaction, :d), "
                "#status = if_not_exists(#status, :active)"),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":c": {"S": contractor}, ":p": {"S": purpose},
                ":d": {"S": consent_date.isoformat()}, ":t": {"N": str(term_days)},
                ":r": {"S": retention_until.isoformat()}, ":active": {"S": "active"},
            },
        )

    def _item(self, speaker: str) -> dict[str, Any] | None:
        out = self._ddb.get_item(TableName=self._table, Key={"speaker": {"S": speaker}},
                                 ConsistentRead=True)
        item = out.get("Item")
        if item is None:
            return None
        return {k: _plain(_DESER.deserialize(v)) for k, v in item.items()}

    def find(self, speaker: str) -> ConsentRecord | None:
        """The speaker's record, or ``None`` if the registry has none (GetItem)."""
        validate_speaker_id(speaker)
        item = self._item(speaker)
        return None if item is None else _record(item)

    def get(self, speaker: str) -> ConsentRecord:
        """The speaker's record; :class:`~securepipe.errors.UnknownSpeakerError` if absent."""
        record = self.find(speaker)
        if record is None:
            raise UnknownSpeakerError(f"no consent record for speaker {speaker!r}")
        return record

    def speakers(self) -> list[ConsentRecord]:
        """Every record (Scan), sorted by speaker."""
        records: list[ConsentRecord] = []
        for page in self._ddb.get_paginator("scan").paginate(
                TableName=self._table, ConsistentRead=True):
            for item in page.get("Items", []):
                records.append(_record({k: _plain(_DESER.deserialize(v))
                                        for k, v in item.items()}))
        return sorted(records, key=lambda r: r.speaker)

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

    # -- key material (used by securepipe.retention.shredding)
    # -------------------------------------------
    def wrapped_key(self, speaker: str) -> tuple[WrappedSpeakerKey | None, str]:
        """The speaker's wrapped key (``None`` if never created or shredded) and status."""
        validate_speaker_id(speaker)
        item = self._item(speaker)
        if item is None:
            raise UnknownSpeakerError(f"no consent record for speaker {speaker!r}")
        status = str(item.get("status", "active"))
        blob = item.get("wrapped_key")
        if blob is None:
            return None, status
        return WrappedSpeakerKey(speaker, str(item["key_id"]), str(item["key_arn"]),
                                 bytes(blob)), status

    def store_wrapped_key(self, speaker: str, *, key_id: str, kms_key_arn: str, blob: bytes,
                          when: dt.datetime) -> bool:
        """Store a new wrapped key, only if the speaker has none and consent is active.

        Returns ``False`` (and stores nothing) if the conditions do not hold; the caller re-reads.
        """
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"speaker": {"S": speaker}},
                UpdateExpression=("SET wrapped_key = :b, key_id = :k, key_arn = :a, "
                                  "key_created_at = :t"),
                ConditionExpression=("attribute_exists(speaker) AND attribute_not_exists("
                                     "wrapped_key) AND attribute_not_exists(erased_at) AND "
                                     "#status = :active"),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":b": {"B": blob}, ":k": {"S": key_id},
                                           ":a": {"S": kms_key_arn},
                                           ":t": {"S": when.isoformat()},
                                           ":active": {"S": "active"}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def remove_wrapped_key(self, speaker: str, when: dt.datetime) -> dict[str, Any]:
        """Delete the wrapped key, mark the speaker erased; return the item's old attributes.

        One UpdateItem (atomic): ``REMOVE wrapped_key`` and ``SET status = erased, erased_at``.
        Unknown speaker: :class:`~securepipe.errors.UnknownSpeakerError`.
        """
        try:
            out = self._ddb.update_item(
                TableName=self._table,
                Key={"speaker": {"S": speaker}},
                UpdateExpression="REMOVE wrapped_key SET #status = :erased, erased_at = :t",
                ConditionExpression="attribute_exists(speaker)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":erased": {"S": "erased"},
                                           ":t": {"S": when.isoformat()}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise UnknownSpeakerError(f"no consent record for speaker {speaker!r}") from None
            raise
        return {k: _plain(_DESER.deserialize(v)) for k, v in out.get("Attributes", {}).items()}

    # -- erasure bookkeeping (used by securepipe.retention.erasure)
    # --------------------------------------
    def begin_erasure(self, speaker: str, when: dt.datetime) -> ConsentRecord:
        """Mark an erasure under way (``erasing``), unless the speaker is already erased."""
        current = self.get(speaker)
        if current.status != "erased":
            self._update(speaker, "SET #status = :s, erasure_requested_at = "
                         "if_not_exists(erasure_requested_at, :t)",
                         {":s": "erasing", ":t": when.isoformat()}, names={"#status": "status"})
        return self.get(speaker)

    def hold_erasure(self, speaker: str, reason: str) -> None:
        """Record that erasure is blocked by a hold (``erasure-held``); the key is kept."""
        self._update(speaker, "SET #status = :s, erasure_hold_reason = :r",
                     {":s": "erasure-held", ":r": reason[:1000]}, names={"#status": "status"})

    def append_journal(self, speaker: str, entry: Mapping[str, Any]) -> None:
        """Append one deleted object version to the speaker's erasure journal."""
        clean = {k: v for k, v in entry.items() if v is not None}
        self._ddb.update_item(
            TableName=self._table,
            Key={"speaker": {"S": speaker}},
            UpdateExpression="SET erasure_journal = list_append(if_not_exists(erasure_journal, "
                             ":empty), :e)",
            ConditionExpression="attribute_exists(speaker)",
            ExpressionAttributeValues={":empty": {"L": []},
                                       ":e": {"L": [_SER.serialize(clean)]}},
        )

    def journal(self, speaker: str) -> list[dict[str, Any]]:
        """The speaker's erasure journal (empty if no erasure started)."""
        item = self._item(speaker) or {}
        return list(item.get("erasure_journal", []))

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


def _record(item: Mapping[str, Any]) -> ConsentRecord:
    erased = item.get("erased_at")
    withdrawn = item.get("withdrawn")
    consent_date = dt.date.fromisoformat(str(item["consent_date"]))
    return ConsentRecord(
        speaker=str(item["speaker"]),
        contractor=str(item["contractor"]),
        purpose=str(item["purpose"]),
        consent_date=consent_date,
        term_days=int(item["term_days"]),
        retention_until=dt.date.fromisoformat(str(item["retention_until"])),
        withdrawn=None if withdrawn is None else dt.date.fromisoformat(str(withdrawn)),
        last_interaction=dt.date.fromisoformat(str(item.get("last_interaction",
                                                            consent_date.isoformat()))),
        status=str(item.get("status", "active")),
        erased_at=None if erased is None else dt.datetime.fromisoformat(str(erased)),
        has_key="wrapped_key" in item,
        key_id=None if item.get("key_id") is None else str(item["key_id"]),
    )


def refuse_if_erasing(speaker: str, status: str) -> None:
    """Raise :class:`EncryptionError` if no new data may be encrypted for the speaker."""
    if status in ERASURE_STATUSES:
        raise EncryptionError(f"speaker {speaker!r} is {status}: nothing new is encrypted for "
                              "them")
