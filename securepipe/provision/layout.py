"""One description of a kit account: the names of its buckets, keys, aliases, roles, table,
trail, topic and queue (:class:`AccountLayout`), and how to find them in an account that exists.

The layout is the real-account counterpart of :class:`securepipe.sandbox.SandboxResources`:
``layout.bucket("raw")``, ``layout.kms_key_arn`` (once discovered or provisioned). Both ways of
provisioning (:func:`securepipe.provision.provision` and the CloudFormation template of
:func:`securepipe.provision.render_cloudformation`) start from it, and
:meth:`AccountLayout.discover` reads it back from an account provisioned either way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from securepipe.audit.monitoring import MonitoringConfig
from securepipe.errors import InvalidParameterError
from securepipe.ids import check_session, describe_value, validate_bucket_name
from securepipe.retention.consent import DEFAULT_TABLE

__all__ = ["BUCKET_ROLES", "KIT_ROLES", "LOCKED_ROLES", "AccountLayout", "KitRole",
           "bucket_name"]

#: The kit's buckets, by role (the same roles as the sandbox and the scorecard).
BUCKET_ROLES = ("raw", "features", "archive", "audit")
KitRole = Literal["uploader", "ingest", "trainer", "auditor", "eraser"]
#: The kit's own roles, each with its generated least-privilege policy
#: (:func:`securepipe.provision.kit_role_policy`); named ``securepipe-<role>`` by default.
KIT_ROLES: tuple[KitRole, ...] = ("uploader", "ingest", "trainer", "auditor", "eraser")
#: Buckets whose Object Lock must be on (the archive's legal holds, the audit trail's retention).
LOCKED_ROLES = ("archive", "audit")
_ACCOUNT = re.compile(r"\d{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d")
_ALIAS = re.compile(r"alias/(?!aws/)[A-Za-z0-9/_-]{1,250}")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_ROLE = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_TRAIL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,126}[A-Za-z0-9]")


def bucket_name(role: str, account_id: str, region: str) -> str:
    """The kit's bucket naming convention: ``securepipe-<role>-<account>-<region>`` (globally
    unique; the scorecard's discovery looks for it)."""
    return f"securepipe-{role}-{account_id}-{region}"


def _check(kind: str, value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidParameterError(f"invalid {kind} {describe_value(value)}")
    return value


@dataclass(frozen=True)
class AccountLayout:
    """The names of everything the kit puts in one account and region.

    Every name is validated when the layout is made, before any AWS call. Key ARNs are filled
    by :meth:`discover` or :func:`~securepipe.provision.provision` (``None`` until then).

    ``speaker_keys``: ingest encrypts with per-speaker keys
    (:class:`~securepipe.retention.shredding.SpeakerKeyConfig`, wrapped by the data key and
    kept in the consent table's ``key#<speaker>`` items), so the ``ingest`` role's generated
    policy also creates and unwraps speaker keys, and the ``trainer`` role's reads and unwraps
    them to decrypt features (:func:`~securepipe.provision.kit_role_policy`). Off by default:
    without it neither role can read a speaker key nor unwrap one.
    """

    account_id: str
    region: str
    buckets: Mapping[str, str] = field(default_factory=dict)
    data_key_alias: str = "alias/securepipe-data"
    archive_key_alias: str = "alias/securepipe-archive"
    signing_key_alias: str = "alias/securepipe-signing"
    contractor_role: str = "securepipe-contractor"
    kit_roles: Mapping[str, str] = field(default_factory=dict)
    consent_table: str = DEFAULT_TABLE
    trail_name: str = MonitoringConfig.trail_name
    topic_name: str = MonitoringConfig.topic_name
    queue_name: str = MonitoringConfig.queue_name
    data_key_arn: str | None = None
    archive_key_arn: str | None = None
    signing_key_arn: str | None = None
    speaker_keys: bool = False

    def __post_init__(self) -> None:
        _check("account id", self.account_id, _ACCOUNT)
        _check("region", self.region, _REGION)
        if not isinstance(self.buckets, Mapping):
            raise InvalidParameterError("buckets must map a role to a bucket name")
        unknown = set(self.buckets) - set(BUCKET_ROLES)
        if unknown:
            raise InvalidParameterError(f"unknown bucket role(s) {sorted(unknown)}; expected "
                                        f"{', '.join(BUCKET_ROLES)}")
        names = {r: validate_bucket_name(self.buckets.get(r) or bucket_name(
            r, self.account_id, self.region)) for r in BUCKET_ROLES}
        if len(set(names.values())) != len(names):
            raise InvalidParameterError("every bucket role needs its own bucket")
        object.__setattr__(self, "buckets", MappingProxyType(names))
        aliases = (self.data_key_alias, self.archive_key_alias, self.signing_key_alias)
        for alias in aliases:
            _check("KMS alias", alias, _ALIAS)
        if len(set(aliases)) != 3:
            raise InvalidParameterError("the data, archive and signing keys need distinct aliases")
        _check("role name", self.contractor_role, _ROLE)
        if not isinstance(self.kit_roles, Mapping):
            raise InvalidParameterError("kit_roles must map a kit role to a role name")
        unknown = set(self.kit_roles) - set(KIT_ROLES)
        if unknown:
            raise InvalidParameterError(f"unknown kit role(s) {sorted(unknown)}; expected "
                                        f"{', '.join(KIT_ROLES)}")
        roles = {r: _check("role name", self.kit_roles.get(r) or f"securepipe-{r}", _ROLE)
                 for r in KIT_ROLES}
        if len({*roles.values(), self.contractor_role}) != len(roles) + 1:
            raise InvalidParameterError("every kit role and the contractor role need their own "
                                        "role name")
        object.__setattr__(self, "kit_roles", MappingProxyType(roles))
        _check("DynamoDB table name", self.consent_table, _NAME)
        if len(self.consent_table) < 3 or len(self.consent_table) > 255:
            raise InvalidParameterError(f"invalid DynamoDB table name "
                                        f"{describe_value(self.consent_table)}")
        _check("trail name", self.trail_name, _TRAIL)
        _check("SNS topic name", self.topic_name, re.compile(r"[A-Za-z0-9_-]{1,256}"))
        _check("SQS queue name", self.queue_name, re.compile(r"[A-Za-z0-9_-]{1,80}"))
        if not isinstance(self.speaker_keys, bool):
            raise InvalidParameterError("speaker_keys must be True or False")

    # -- what lessons and kit functions use --------------------------------------------------
    def bucket(self, role: str) -> str:
        """The bucket name for a role (``raw``, ``features``, ``archive``, ``audit``)."""
        try:
            return self.buckets[role]
        except KeyError:
            raise InvalidParameterError(f"unknown bucket role {role!r}; expected one of "
                                        f"{', '.join(BUCKET_ROLES)}") from None

    def role_name(self, role: str) -> str:
        """The IAM role name of a kit role (``uploader``, ``ingest``, ``trainer``, ``auditor``,
        ``eraser``)."""
        try:
            return self.kit_roles[role]
        except KeyError:
            raise InvalidParameterError(f"unknown kit role {role!r}; expected one of "
                                        f"{', '.join(KIT_ROLES)}") from None

    @property
    def kms_key_arn(self) -> str:
        """The data key's ARN (as :attr:`SandboxResources.kms_key_arn`); needs discovery."""
        if self.data_key_arn is None:
            raise InvalidParameterError("the data key is not known yet: use "
                                        "AccountLayout.discover(session) or provision()")
        return self.data_key_arn

    @property
    def data_buckets(self) -> tuple[str, ...]:
        return tuple(self.buckets[r] for r in ("raw", "features", "archive"))

    def monitoring_config(self) -> MonitoringConfig:
        return dataclasses.replace(MonitoringConfig(), trail_name=self.trail_name,
                                   topic_name=self.topic_name, queue_name=self.queue_name)

    def with_keys(self, *, data_key_arn: str | None = None, archive_key_arn: str | None = None,
                  signing_key_arn: str | None = None) -> AccountLayout:
        """The same layout with the keys' ARNs (as read from their aliases)."""
        return dataclasses.replace(self, data_key_arn=data_key_arn,
                                   archive_key_arn=archive_key_arn,
                                   signing_key_arn=signing_key_arn)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def for_session(cls, session: boto3.Session, **names: Any) -> AccountLayout:
        """The default layout for the session's account and region (STS GetCallerIdentity)."""
        check_session(session)
        account = str(session.client("sts").get_caller_identity()["Account"])
        return cls(account_id=account, region=session.region_name or "us-east-1", **names)

    @classmethod
    def discover(cls, session: boto3.Session, **names: Any) -> AccountLayout:
        """The layout of an account provisioned by :func:`~securepipe.provision.provision` or by
        the CloudFormation template, with the keys' ARNs read from their aliases.

        Buckets are found by the naming convention (or ``names``); a key whose alias does not
        exist stays ``None``. Wraps STS GetCallerIdentity and KMS ListAliases/DescribeKey
        (https://docs.aws.amazon.com/kms/latest/APIReference/API_ListAliases.html).
        """
        layout = cls.for_session(session, **names)
        return layout.with_keys(**key_arns(session, layout))


def key_arns(session: boto3.Session, layout: AccountLayout) -> dict[str, str | None]:
    """``data_key_arn``, ``archive_key_arn``, ``signing_key_arn`` read from the aliases."""
    kms = session.client("kms")
    wanted = {layout.data_key_alias: "data_key_arn", layout.archive_key_alias: "archive_key_arn",
              layout.signing_key_alias: "signing_key_arn"}
    found: dict[str, str | None] = dict.fromkeys(wanted.values())
    try:
        for page in kms.get_paginator("list_aliases").paginate():
            for alias in page.get("Aliases", []):
                if alias.get("AliasName") in wanted and alias.get("TargetKeyId"):
                    meta = kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]
                    found[wanted[alias["AliasName"]]] = str(meta["Arn"])
    except (ClientError, BotoCoreError):
        pass  # what cannot be read stays unknown; provision() and the scorecard say so
    return found
