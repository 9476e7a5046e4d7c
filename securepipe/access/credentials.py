"""Step 2 of the kit: least-privilege, short-lived credentials scoped to one contractor.

The pattern (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access_assumerole.html):

* one IAM role, :func:`ensure_contractor_role`, whose identity policy covers the whole raw upload
  area (every contractor's prefix) and nothing else;
* per contractor, :func:`vend_contractor_credentials` calls STS ``AssumeRole`` with a *session
  policy* (:func:`contractor_session_policy`) that narrows the role to that contractor's prefix
  and to data keys bound to that contractor. A session's permissions are the intersection of the
  role's policy and the session policy: the session policy can only take away
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session).
  The credentials expire after 15 minutes by default, and the session is named after the
  contractor (``RoleSessionName``, ``SourceIdentity``, a session tag) so the audit trail says who
  acted;
* the session policy is built as data from a validated id, never by formatting a caller's
  string into JSON (compare :func:`securepipe.lessons.antipatterns.fstring_session_policy`);
* listing is granted only with an ``s3:prefix`` condition, or every contractor could list
  everyone's keys;
* :func:`access_matrix` reviews who can do what on which prefix with the kit's policy evaluator
  (:mod:`securepipe.policy`), from policies read back through the IAM API, and
  :func:`broad_grants` flags any principal that reaches more than one contractor's prefix.

moto note (see :mod:`securepipe.sandbox.gaps`): moto stores the session policy but never enforces
it, nor the session's expiry, nor ``s3:prefix`` conditions, and it accepts ``SourceIdentity`` and
session ``Tags`` without storing or returning them. In the sandbox, the refusals come from the
kit's emulation (:mod:`securepipe.sandbox.emulation`, which applies :mod:`securepipe.policy` to
every
request signed with STS credentials); on a real account AWS itself enforces them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import boto3
import botocore.session

from securepipe import clock as kit_clock
from securepipe.errors import InvalidParameterError
from securepipe.ids import (
    CONTRACTOR_ID,
    check_int,
    check_session,
    describe_value,
    validate_bucket_name,
    validate_contractor_id,
    validate_kms_key_arn,
)
from securepipe.merge import merge_policy
from securepipe.policy import Policy

__all__ = [
    "ACTIONS",
    "CONTEXT_CONTRACTOR_KEY",
    "DEFAULT_DURATION_S",
    "DEFAULT_ROLE_NAME",
    "MAX_PRESIGN_S",
    "MAX_SESSION_POLICY_CHARS",
    "MIN_DURATION_S",
    "RAW_PREFIX",
    "ContractorCredentials",
    "contractor_prefix",
    "contractor_role_policy",
    "contractor_session",
    "contractor_session_policy",
    "contractor_trust_statement",
    "ensure_contractor_role",
    "serialise_session_policy",
    "vend_contractor_credentials",
]


#: Raw uploads live at ``raw/<contractor>/<sample_id>`` (as
# :func:`securepipe.encryption.upload.sample_key`).
RAW_PREFIX = "raw"


#: The encryption-context key naming the contractor
# (:class:`securepipe.encryption.envelope.SampleContext`).
CONTEXT_CONTRACTOR_KEY = "securepipe:contractor"


#: AssumeRole's ``Policy`` parameter: at most 2,048 characters.
MAX_SESSION_POLICY_CHARS = 2048


#: ``DurationSeconds`` runs from 900 s to the role's ``MaxSessionDuration`` (at most 12 h).
MIN_DURATION_S = 900


DEFAULT_DURATION_S = 900


_MAX_ROLE_SESSION_S = 12 * 3600


_MIN_ROLE_SESSION_S = 3600


#: A session made from another role session (role chaining) lasts at most one hour.
_ROLE_CHAINING_MAX_S = 3600


# A presigned URL is a bearer token: whoever holds the link can fetch the object until it
# expires, with no further check. Links end up pasted into chats, tickets and browser histories,
# so they should die quickly: 15 minutes is enough to start a download and short enough that a
# link found later in a chat log is useless. (S3 itself allows up to 7 days with SigV4, and a
# link signed with temporary credentials dies with the session in any case.)
MAX_PRESIGN_S = 900


DEFAULT_ROLE_NAME = "securepipe-contractor"


_MIN_SOURCE_IDENTITY = 2


_ROLE_POLICY_NAME = "securepipe-contractor-raw-access"


#: The S3 actions the access review checks, by short name.
ACTIONS: Mapping[str, str] = {
    "Get": "s3:GetObject",
    "Put": "s3:PutObject",
    "List": "s3:ListBucket",
    "Delete": "s3:DeleteObject",
}


ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)


ROLE_ARN = re.compile(
    r"arn:(aws(?:-[a-z]+)*):iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})", re.ASCII
)


SESSION_ARN = re.compile(r"arn:(aws(?:-[a-z]+)*):sts::(\d{12}):assumed-role/([^/]+)/.+")


CONTRACTOR_PREFIX = re.compile(rf"{RAW_PREFIX}/(?:{CONTRACTOR_ID.pattern})/")


MAX_KEY_BYTES = 1024


def _partition(key_arn: str) -> str:
    return key_arn.split(":", 2)[1]  # "aws", "aws-cn", "aws-us-gov", ...


def contractor_prefix(contractor: str) -> str:
    """The key prefix a contractor owns in the raw bucket: ``raw/<contractor>/``."""
    return f"{RAW_PREFIX}/{validate_contractor_id(contractor)}/"


def contractor_session_policy(contractor: str, *, bucket: str, key_arn: str) -> dict[str, Any]:
    """The session policy that narrows the contractor role to one contractor.

    Built as a data structure from a validated id (no string is ever formatted into JSON), with
    three statements:

    * ``OwnObjects``: ``s3:GetObject``, ``s3:PutObject``, ``s3:DeleteObject`` on
      ``arn:aws:s3:::<bucket>/raw/<contractor>/*``;
    * ``ListOwnPrefix``: ``s3:ListBucket`` on the bucket, only when the request's ``s3:prefix``
      is ``raw/<contractor>/`` or below it
      (https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html);
    * ``OwnDataKeys``: ``kms:GenerateDataKey`` and ``kms:Decrypt`` on the key, only when the
      encryption context names this contractor
      (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-encryption-context):
      the contractor can make data keys for, and open, only its own recordings.

    Session policies: https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session
    """
    contractor = validate_contractor_id(contractor)
    bucket = validate_bucket_name(bucket)
    key_arn = validate_kms_key_arn(key_arn)
    partition = _partition(key_arn)
    prefix = contractor_prefix(contractor)
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"{bucket_arn}/{prefix}*"],
            },
            {
                "Sid": "ListOwnPrefix",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket_arn],
                "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
            },
            {
                "Sid": "OwnDataKeys",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": [key_arn],
                "Condition": {
                    "StringEquals": {f"kms:EncryptionContext:{CONTEXT_CONTRACTOR_KEY}": contractor}
                },
            },
        ],
    }


def serialise_session_policy(doc: Mapping[str, Any]) -> str:
    """Compact JSON for AssumeRole's ``Policy`` parameter, refused if over 2,048 characters.

    The 2,048-character limit is the plain-text size of the parameter
    (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html). AWS also checks a
    second, *packed* size (session policies, managed-policy ARNs and session tags compressed
    together) and refuses with ``PackedPolicyTooLarge`` when that exceeds its limit; the response's
    ``PackedPolicySize`` says how close a call came. This function can only check the first.
    The document must also parse as a policy (:meth:`securepipe.policy.Policy.from_document`).
    """
    if not isinstance(doc, Mapping):
        raise InvalidParameterError("a session policy must be a JSON object (a mapping)")
    Policy.from_document("session-policy", doc)
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True)
    if len(text) > MAX_SESSION_POLICY_CHARS:
        raise InvalidParameterError(
            f"session policy is {len(text)} characters; AssumeRole accepts at most "
            f"{MAX_SESSION_POLICY_CHARS}"
        )
    return text


def contractor_role_policy(*, bucket: str, key_arn: str) -> dict[str, Any]:
    """The contractor role's own (identity) policy: every contractor's raw prefix.

    Deliberately broader than one contractor: ``s3:GetObject``/``PutObject``/``DeleteObject``
    under ``raw/``, ``s3:ListBucket`` for prefixes under ``raw/``, and ``kms:GenerateDataKey``/
    ``kms:Decrypt`` on the key. Each session narrows it with :func:`contractor_session_policy`.
    """
    bucket = validate_bucket_name(bucket)
    key_arn = validate_kms_key_arn(key_arn)
    partition = _partition(key_arn)
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RawObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"{bucket_arn}/{RAW_PREFIX}/*"],
            },
            {
                "Sid": "ListRaw",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket_arn],
                "Condition": {"StringLike": {"s3:prefix": [f"{RAW_PREFIX}/", f"{RAW_PREFIX}/*"]}},
            },
            {
                "Sid": "DataKeys",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": [key_arn],
            },
        ],
    }


TRUST_SID = "AccountMayAssume"


PRINCIPAL_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:(?:iam::\d{12}:(?:root|(?:role|user)/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64})"
    r"|sts::\d{12}:assumed-role/[\w+=,.@-]{1,64}/[\w+=,.@-]{2,64})", re.ASCII
)


def contractor_trust_statement(principals: Sequence[str]) -> dict[str, Any]:
    """The trust-policy statement (Sid ``AccountMayAssume``) that lets ``principals`` assume the
    contractor role, set a source identity and tag the session (AssumeRole refuses
    ``SourceIdentity`` and session tags unless the trust policy allows them).

    ``principals`` are IAM ARNs: an account root, a role or a user
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html).
    """
    if isinstance(principals, str) or not isinstance(principals, Sequence) or not principals:
        raise InvalidParameterError("trusted_principals must be a non-empty list of IAM ARNs")
    for arn in principals:
        if not isinstance(arn, str) or PRINCIPAL_ARN.fullmatch(arn) is None:
            raise InvalidParameterError(f"invalid trusted principal {describe_value(arn)}")
    return {
        "Sid": TRUST_SID,
        "Effect": "Allow",
        "Principal": {"AWS": list(principals) if len(principals) > 1 else principals[0]},
        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
    }


def ensure_contractor_role(
    session: boto3.Session,
    *,
    bucket: str,
    key_arn: str,
    role_name: str = DEFAULT_ROLE_NAME,
    max_session_s: int = 3600,
    trusted_principals: Sequence[str] | None = None,
) -> str:
    """Create (or bring up to date) the contractor role and return its ARN.

    ``trusted_principals`` (IAM ARNs) may assume the role, set a source identity and tag the
    session (:func:`contractor_trust_statement`). A new role trusts them, or, by default, the
    account root (``arn:aws:iam::<account>:root``: whoever the account's own IAM policies allow
    ``sts:AssumeRole`` on it). On an existing role the trust policy is left exactly as it is
    unless ``trusted_principals`` is given, and then only the kit's statement (Sid
    ``AccountMayAssume``) is replaced: a re-run never resets a trust policy you narrowed.

    The inline identity policy is deliberately broader than one contractor: objects under
    ``raw/``, listing under ``raw/``, and data keys on the key; every contractor session narrows
    it with :func:`contractor_session_policy`. Its statements are merged by Sid into the kit's
    inline policy (:func:`securepipe.merge.merge_policy`), so statements you added there stay.

    Idempotent. Wraps IAM CreateRole (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html),
    UpdateRole, GetRole, UpdateAssumeRolePolicy, GetRolePolicy and PutRolePolicy
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePolicy.html).
    """
    bucket = validate_bucket_name(bucket)
    key_arn = validate_kms_key_arn(key_arn)
    if not isinstance(role_name, str) or ROLE_NAME.fullmatch(role_name) is None:
        raise InvalidParameterError(f"invalid role name {describe_value(role_name)}")
    max_session_s = check_int(max_session_s, "max_session_s", _MIN_ROLE_SESSION_S,
                               _MAX_ROLE_SESSION_S)
    given = (None if trusted_principals is None
             else contractor_trust_statement(trusted_principals))
    iam = check_session(session).client("iam")
    description = "securepipe: contractor uploads; every session is narrowed to one contractor"
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        role = None
    if role is None:
        if given is None:
            account = session.client("sts").get_caller_identity()["Account"]
            given = contractor_trust_statement([f"arn:{_partition(key_arn)}:iam::{account}:root"])
        arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(merge_policy(None, [given])),
            Description=description,
            MaxSessionDuration=max_session_s,
            Tags=[{"Key": "securepipe", "Value": "contractor-access"}],
        )["Role"]["Arn"]
    else:
        arn = role["Arn"]
        if given is not None:
            current = role.get("AssumeRolePolicyDocument")
            if isinstance(current, str):  # botocore decodes it; a raw endpoint may not
                current = json.loads(unquote(current))
            merged = merge_policy(current, [given])
            if merged != current:
                iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(merged))
        if (role.get("Description") != description
                or int(role.get("MaxSessionDuration", 0)) != max_session_s):
            iam.update_role(RoleName=role_name, Description=description,
                            MaxSessionDuration=max_session_s)
    try:
        inline: dict[str, Any] | None = iam.get_role_policy(
            RoleName=role_name, PolicyName=_ROLE_POLICY_NAME)["PolicyDocument"]
        if isinstance(inline, str):
            inline = json.loads(unquote(inline))
    except iam.exceptions.NoSuchEntityException:
        inline = None
    wanted = merge_policy(inline, contractor_role_policy(bucket=bucket, key_arn=key_arn)[
        "Statement"])
    if wanted != inline:
        iam.put_role_policy(RoleName=role_name, PolicyName=_ROLE_POLICY_NAME,
                            PolicyDocument=json.dumps(wanted))
    return str(arn)


@dataclass(frozen=True, repr=False)
class ContractorCredentials:
    """Temporary credentials for one contractor. ``repr`` never shows the secret or the token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: dt.datetime
    contractor: str
    role_session_name: str
    session_policy: str

    def __repr__(self) -> str:
        return (
            f"ContractorCredentials(contractor={self.contractor!r}, "
            f"role_session_name={self.role_session_name!r}, "
            f"access_key_id={self.access_key_id!r}, secret_access_key='***', "
            f"session_token='***', expiration={self.expiration.isoformat()!r})"
        )

    __str__ = __repr__


def vend_contractor_credentials(
    session: boto3.Session,
    *,
    role_arn: str,
    contractor: str,
    bucket: str,
    key_arn: str,
    duration_s: int = DEFAULT_DURATION_S,
) -> ContractorCredentials:
    """Assume the contractor role for one contractor, narrowed by its session policy.

    Every argument is checked before any AWS call. ``duration_s`` must be an integer from 900
    to the role's ``MaxSessionDuration`` (read with IAM GetRole, so the role must be in the
    caller's account), and at most 3,600 when ``session`` is itself a role session (role
    chaining). The session is named ``contractor-<id>``, carries ``SourceIdentity=<id>`` (which
    AWS keeps on every later role session made from it) and the session tag
    ``contractor=<id>``, so CloudTrail names the contractor.

    Wraps STS AssumeRole (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html).
    """
    contractor = validate_contractor_id(contractor)
    if len(contractor) < _MIN_SOURCE_IDENTITY:
        # AssumeRole's SourceIdentity (the contractor id) takes 2 to 64 characters
        # (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html)
        raise InvalidParameterError(
            f"contractor id {contractor!r} is too short to vend credentials for: AssumeRole's "
            f"SourceIdentity needs at least {_MIN_SOURCE_IDENTITY} characters")
    duration_s = check_int(duration_s, "duration_s", MIN_DURATION_S, _MAX_ROLE_SESSION_S)
    match = ROLE_ARN.fullmatch(role_arn) if isinstance(role_arn, str) else None
    if match is None:
        raise InvalidParameterError(f"invalid role ARN {describe_value(role_arn)}")
    policy = serialise_session_policy(
        contractor_session_policy(contractor, bucket=bucket, key_arn=key_arn)
    )
    session_name = f"contractor-{contractor}"

    role = session.client("iam").get_role(RoleName=match.group(3))["Role"]
    maximum = int(role.get("MaxSessionDuration", _MIN_ROLE_SESSION_S))
    sts = session.client("sts")
    if ":assumed-role/" in sts.get_caller_identity()["Arn"]:
        maximum = min(maximum, _ROLE_CHAINING_MAX_S)
    if duration_s > maximum:
        raise InvalidParameterError(
            f"duration_s must be an integer in [{MIN_DURATION_S}, {maximum}] for this role "
            f"and caller, got {duration_s}"
        )
    out = sts.assume_role(
        RoleArn=role_arn,
        RoleSessionName=session_name,
        DurationSeconds=duration_s,
        Policy=policy,
        SourceIdentity=contractor,
        Tags=[{"Key": "contractor", "Value": contractor}],
    )
    creds = out["Credentials"]
    expiration = creds["Expiration"]
    if not isinstance(expiration, dt.datetime):  # pragma: no cover - botocore parses it
        expiration = dt.datetime.fromisoformat(str(expiration).replace("Z", "+00:00"))
    if expiration.tzinfo is None:  # pragma: no cover - botocore returns aware datetimes
        expiration = expiration.replace(tzinfo=dt.UTC)
    return ContractorCredentials(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
        expiration=expiration.astimezone(dt.UTC),
        contractor=contractor,
        role_session_name=session_name,
        session_policy=policy,
    )


def contractor_session(
    base_session: boto3.Session, creds: ContractorCredentials,
    clock: Callable[[], dt.datetime] = kit_clock.now,
) -> boto3.Session:
    """A boto3 Session that acts with ``creds`` but is configured like ``base_session``.

    The base botocore session's configuration variables (region, profile, config file, CA
    bundle, endpoint URL from the profile, ...) are copied into a fresh botocore session, which
    then gets the temporary credentials
    (https://docs.aws.amazon.com/botocore/latest/reference/session.html); so against the
    sandbox's server mode the contractor reaches the same endpoint, and on a real account the
    same Region. Expired credentials are refused, by ``clock`` (:func:`securepipe.clock.now`,
    which the sandbox can move; on a real account it is the real clock).
    """
    if not isinstance(base_session, boto3.Session):
        raise InvalidParameterError("expected a boto3.Session")
    if not isinstance(creds, ContractorCredentials):
        raise InvalidParameterError("expected ContractorCredentials")
    if creds.expiration <= clock():
        raise InvalidParameterError("these contractor credentials have expired")
    return session_with_credentials(base_session, creds.access_key_id,
                                    creds.secret_access_key, creds.session_token)


def session_with_credentials(base_session: boto3.Session, access_key_id: str,
                             secret_access_key: str,
                             session_token: str | None = None) -> boto3.Session:
    """A boto3 Session configured like ``base_session`` (region, profile, endpoint, CA bundle)
    that signs with the given credentials instead of the base session's."""
    if not isinstance(base_session, boto3.Session):
        raise InvalidParameterError("expected a boto3.Session")
    base = base_session._session
    private = botocore.session.Session()
    for name, value in base.instance_variables().items():
        private.set_config_variable(name, value)
    private.set_credentials(access_key_id, secret_access_key, session_token)
    return boto3.Session(botocore_session=private)
