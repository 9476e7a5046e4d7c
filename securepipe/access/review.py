"""The access review: who (roles, users, sessions) can read which contractor's data and which
keys, evaluated with :mod:`securepipe.policy` over the account's real policies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import boto3

from securepipe.access.credentials import (
    ACTIONS,
    CONTRACTOR_PREFIX,
    ROLE_ARN,
    ROLE_NAME,
    SESSION_ARN,
)
from securepipe.clients import shared_client
from securepipe.errors import InvalidParameterError
from securepipe.ids import (
    describe_value,
    validate_bucket_name,
    validate_kms_key_arn,
)
from securepipe.policy import Caller, Decision, Policy, Request, evaluate


@dataclass(frozen=True)
class Principal:
    """Who is reviewed: identity policies and, for a role session, its session policies.

    ``session`` is ``None`` for the role itself (no session policy). ``arn`` is who makes the
    request: the role ARN for the role, ``arn:aws:sts::<account>:assumed-role/<role>/<name>``
    for a session (a bucket policy's ``Principal`` is matched against it; ``aws:PrincipalArn``
    is the role's ARN in both cases, as in AWS). Permissions boundaries and organization
    policies are not modelled.
    """

    name: str
    identity: tuple[Policy, ...]
    session: tuple[Policy, ...] | None = None
    arn: str | None = None
    #: for a role session, the role's ARN (with its path): a bucket policy naming the role
    role_arn: str | None = None


def _document(raw: Any) -> Any:
    """A policy document as IAM returns it: a dict (boto3 decodes it) or URL-encoded JSON."""
    if isinstance(raw, str) and not raw.lstrip().startswith("{"):
        return unquote(raw)
    return raw


def role_principal(session: boto3.Session, role_name: str) -> Principal:
    """Read a role's inline and attached managed policies through the IAM API.

    Wraps GetRole, ListRolePolicies/GetRolePolicy (inline) and ListAttachedRolePolicies/
    GetPolicy/GetPolicyVersion (managed, default version)
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListRolePolicies.html); works on a
    real account with read access to IAM.
    """
    if not isinstance(role_name, str) or ROLE_NAME.fullmatch(role_name) is None:
        raise InvalidParameterError(f"invalid role name {describe_value(role_name)}")
    iam = shared_client(session, "iam")
    arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    policies: list[Policy] = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
            policies.append(Policy.from_document(f"{role_name}/{name}", _document(doc)))
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        for attached in page["AttachedPolicies"]:
            policy_arn = attached["PolicyArn"]
            version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
            doc = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)
            policies.append(Policy.from_document(
                attached["PolicyName"], _document(doc["PolicyVersion"]["Document"])
            ))
    return Principal(name=role_name, identity=tuple(policies), session=None, arn=str(arn))


def user_principal(session: boto3.Session, user_name: str) -> Principal:
    """Read an IAM user's inline, attached and group policies through the IAM API.

    Wraps GetUser, ListUserPolicies/GetUserPolicy, ListAttachedUserPolicies, ListGroupsForUser
    and the group equivalents (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListGroupsForUser.html),
    managed policies at their default version. Permissions boundaries are not modelled.
    """
    if not isinstance(user_name, str) or ROLE_NAME.fullmatch(user_name) is None:
        raise InvalidParameterError(f"invalid user name {describe_value(user_name)}")
    iam = shared_client(session, "iam")
    arn = iam.get_user(UserName=user_name)["User"]["Arn"]
    policies: list[Policy] = []

    def managed(attached: Sequence[Mapping[str, Any]]) -> None:
        for item in attached:
            policy_arn = item["PolicyArn"]
            version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
            doc = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)
            policies.append(Policy.from_document(
                item["PolicyName"], _document(doc["PolicyVersion"]["Document"])))

    for page in iam.get_paginator("list_user_policies").paginate(UserName=user_name):
        for name in page["PolicyNames"]:
            doc = iam.get_user_policy(UserName=user_name, PolicyName=name)["PolicyDocument"]
            policies.append(Policy.from_document(f"{user_name}/{name}", _document(doc)))
    for page in iam.get_paginator("list_attached_user_policies").paginate(UserName=user_name):
        managed(page["AttachedPolicies"])
    for page in iam.get_paginator("list_groups_for_user").paginate(UserName=user_name):
        for group in page["Groups"]:
            group_name = group["GroupName"]
            for gpage in iam.get_paginator("list_group_policies").paginate(GroupName=group_name):
                for name in gpage["PolicyNames"]:
                    doc = iam.get_group_policy(GroupName=group_name,
                                               PolicyName=name)["PolicyDocument"]
                    policies.append(Policy.from_document(f"group/{group_name}/{name}",
                                                         _document(doc)))
            for gpage in iam.get_paginator("list_attached_group_policies").paginate(
                    GroupName=group_name):
                managed(gpage["AttachedPolicies"])
    return Principal(name=user_name, identity=tuple(policies), session=None, arn=str(arn))


def session_principal(
    role: Principal, name: str, session_policy: Mapping[str, Any] | str
) -> Principal:
    """A session of ``role`` narrowed by ``session_policy`` (a document or its JSON text)."""
    if not isinstance(role, Principal):
        raise InvalidParameterError("role must be a Principal (see role_principal)")
    if not isinstance(name, str) or not name or len(name) > 128:
        raise InvalidParameterError(f"invalid principal name {describe_value(name)}")
    policy = Policy.from_document(f"{name}/session", session_policy)
    arn = role.arn
    match = ROLE_ARN.fullmatch(arn) if arn else None
    if match is not None:
        partition, account, role_name = match.groups()
        arn = f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{name}"
    return Principal(name=name, identity=role.identity, session=(policy,), arn=arn,
                     role_arn=role.arn if match is not None else None)


@dataclass(frozen=True)
class AccessMatrix:
    """Decisions for every principal x prefix x action (short names from :data:`ACTIONS`)."""

    bucket: str
    principals: tuple[str, ...]
    prefixes: tuple[str, ...]
    actions: tuple[str, ...]
    cells: Mapping[tuple[str, str, str], Decision]

    def decision(self, principal: str, prefix: str, action: str) -> Decision:
        """The decision for one cell."""
        return self.cells[(principal, prefix, action)]

    def rows(self) -> list[dict[str, str | None]]:
        """One row per cell: principal, prefix, action, decision (effect), statement."""
        return [
            {"principal": p, "prefix": pre, "action": a, "decision": d.effect,
             "statement": d.statement}
            for (p, pre, a), d in self.cells.items()
        ]

    def allowed_prefixes(self, principal: str, action: str) -> list[str]:
        """The prefixes on which ``principal`` is allowed ``action`` (``Get``, ``List``, ...)."""
        if principal not in self.principals or action not in self.actions:
            raise InvalidParameterError(f"unknown principal or action: {principal!r}, {action!r}")
        return [pre for pre in self.prefixes if self.cells[(principal, pre, action)].allowed]


def key_users(principals: Sequence[Principal], key_arn: str, action: str = "kms:Sign"
              ) -> dict[str, Decision]:
    """The principals allowed ``action`` on the KMS key ``key_arn`` (their identity and session
    policies, evaluated with :func:`securepipe.policy.evaluate`), with the deciding statement.

    Key policies and grants are not modelled: this answers "which identity policies let it".
    """
    key_arn = validate_kms_key_arn(key_arn)
    found: dict[str, Decision] = {}
    for principal in principals:
        if not isinstance(principal, Principal):
            raise InvalidParameterError("principals must be Principal objects")
        context: dict[str, Any] = {"aws:SecureTransport": "true"}
        if principal.arn:
            context["aws:PrincipalArn"] = principal.arn
        decision = evaluate(Request(action, key_arn, principal.arn, context),
                            identity=list(principal.identity),
                            session=list(principal.session) if principal.session is not None
                            else None)
        if decision.allowed:
            found[principal.name] = decision
    return found


def _request(principal: Principal, bucket_arn: str, prefix: str, action: str) -> Request:
    """The probe request; a bucket policy's Principal is matched per AWS's rules for role
    sessions (see :mod:`securepipe.policy`: the session ARN, the role ARN, the account)."""
    context: dict[str, Any] = {"aws:SecureTransport": "true"}
    caller = None
    if principal.arn:
        session = SESSION_ARN.fullmatch(principal.arn)
        role_arn = principal.role_arn or (
            f"arn:{session.group(1)}:iam::{session.group(2)}:role/{session.group(3)}"
            if session else None)
        context["aws:PrincipalArn"] = role_arn if session else principal.arn
        caller = Caller.of(principal.arn, role_arn)
    if action == "List":
        context["s3:prefix"] = prefix
        return Request(ACTIONS[action], bucket_arn, principal.arn, context, caller=caller)
    return Request(ACTIONS[action], f"{bucket_arn}/{prefix}probe", principal.arn, context,
                   caller=caller)


def access_matrix(
    principals: Sequence[Principal],
    *,
    bucket: str,
    prefixes: Sequence[str],
    bucket_policy: Policy | None = None,
) -> AccessMatrix:
    """Evaluate Get/Put/List/Delete for each principal on each prefix of ``bucket``.

    Object actions are asked about ``arn:aws:s3:::<bucket>/<prefix>probe``; List about the
    bucket with ``s3:prefix=<prefix>``; every request is made over TLS
    (``aws:SecureTransport=true``). Decided by :func:`securepipe.policy.evaluate` with the
    principal's identity and session policies and, if given, the bucket policy.
    """
    bucket = validate_bucket_name(bucket)
    principals = tuple(principals)
    if not all(isinstance(p, Principal) for p in principals):
        raise InvalidParameterError("principals must be Principal objects")
    names = tuple(p.name for p in principals)
    if len(set(names)) != len(names):
        raise InvalidParameterError("principal names must be unique")
    prefixes = tuple(prefixes)
    for prefix in prefixes:
        if not isinstance(prefix, str) or len(prefix.encode("utf-8", "surrogatepass")) > 1000:
            raise InvalidParameterError(f"invalid prefix {describe_value(prefix)}")
    if len(set(prefixes)) != len(prefixes):
        raise InvalidParameterError("prefixes must be unique")
    if bucket_policy is not None and not isinstance(bucket_policy, Policy):
        raise InvalidParameterError("bucket_policy must be a securepipe.policy.Policy")
    resource = [bucket_policy] if bucket_policy is not None else []
    bucket_arn = f"arn:aws:s3:::{bucket}"
    cells: dict[tuple[str, str, str], Decision] = {}
    for principal in principals:
        session = list(principal.session) if principal.session is not None else None
        for prefix in prefixes:
            for action in ACTIONS:
                request = _request(principal, bucket_arn, prefix, action)
                cells[(principal.name, prefix, action)] = evaluate(
                    request, identity=list(principal.identity), session=session,
                    resource=resource,
                )
    return AccessMatrix(bucket=bucket, principals=names, prefixes=prefixes,
                        actions=tuple(ACTIONS), cells=cells)


@dataclass(frozen=True)
class BroadGrant:
    """A principal allowed ``action`` on more than one contractor's prefix."""

    principal: str
    action: str
    prefixes: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.principal} may {self.action} on {len(self.prefixes)} contractor prefixes"


def broad_grants(matrix: AccessMatrix) -> list[BroadGrant]:
    """Every (principal, action) allowed on more than one ``raw/<contractor>/`` prefix."""
    found = []
    for principal in matrix.principals:
        for action in matrix.actions:
            hits = tuple(p for p in matrix.allowed_prefixes(principal, action)
                         if CONTRACTOR_PREFIX.fullmatch(p))
            if len(hits) > 1:
                found.append(BroadGrant(principal=principal, action=action, prefixes=hits))
    return found
