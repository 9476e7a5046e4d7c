"""An IAM policy evaluator that follows AWS's documented evaluation logic.

moto stores policies but evaluates their conditions wrongly (Allow conditions ignored, Deny
conditions always matching) and ignores session policies altogether; see
:mod:`securepipe.sandbox.gaps`. The sandbox therefore applies *this* evaluator to its requests, and
every refusal it produces is labelled as an emulation of AWS.

Scope, all from the IAM User Guide's policy reference
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html):

* ``Effect``, ``Action``/``NotAction``, ``Resource``/``NotResource``, ``Principal`` (for
  resource-based policies) with ``*`` and ``?`` wildcards; actions match case-insensitively;
* policy variables ``${key}`` in ``Resource`` and condition values, plus ``${*}``, ``${?}``,
  ``${$}``; a variable whose key is absent makes the element not match;
* condition operators: String*, Numeric*, Date*, Bool, Null, Arn*, with ``...IfExists`` and the
  ``ForAnyValue:``/``ForAllValues:`` set operators;
* the decision (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
  an explicit Deny anywhere wins; otherwise a same-account request is allowed by an identity
  policy that allows it (and, when session policies are present, a session policy that allows it
  too), or by a resource-based policy that names the principal; otherwise implicitly denied.
  Which principal a resource-based policy names decides how it combines with a session policy
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session):

  - the *session ARN* (``arn:aws:sts::<acct>:assumed-role/<role>/<session>``): the grant is
    added after the session policy is applied, so it allows even where the session policy does
    not;
  - the *role ARN* (or an IAM user's ARN): the grant is added to the identity-based policies
    before the session is created, so the session policy still limits it;
  - the *account* (``arn:aws:iam::<acct>:root`` or ``<acct>``): the account delegates to its
    own IAM policies (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-accounts),
    so the grant adds nothing: the identity (and session) policies must allow. The account is
    matched exactly, never as a substring of the caller's ARN;
  - ``*`` (anyone): treated as a grant to the role (the session policy still limits it); the
    stricter of the two readings, since the documentation names only ARNs.

* ``Version`` (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_version.html):
  policy variables are substituted only in ``2012-10-17`` policies; in a policy without a
  Version, or ``2008-10-17``, ``${...}`` is literal text. Variables may carry a default,
  ``${key, 'default'}`` (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#policy-vars-default-values);
* ``ArnLike``/``ArnEquals`` compare each of the six colon-separated ARN parts separately
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_ARN);
  ``IpAddress``/``NotIpAddress`` compare against CIDR ranges.

What the evaluator does not understand is refused when the policy is built, with
:class:`~securepipe.errors.InvalidParameterError`, never at request time: an unknown operator,
``NullIfExists``, an empty or missing ``Action``/``Resource``, a malformed CIDR or Version.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from securepipe.errors import InvalidParameterError

ContextValue = str | bool | int | float | Sequence[str] | None

_VAR = re.compile(r"\$\{([^}]*)\}")
#: ``${key, 'default'}``: a variable with a default value.
_VAR_DEFAULT = re.compile(r"\s*([^,\s]+)\s*,\s*'([^']*)'\s*")
VERSIONS = ("2012-10-17", "2008-10-17")


class _Missing(Exception):
    """A policy variable named a key the request does not carry."""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclass(frozen=True)
class Statement:
    """One parsed policy statement."""

    effect: Literal["Allow", "Deny"]
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    principals: tuple[str, ...] | None = None  # None: identity policy (no Principal element)
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    sid: str | None = None
    index: int = 0
    #: policy variables are substituted (``Version: 2012-10-17``) or literal text
    variables: bool = True


@dataclass(frozen=True)
class Policy:
    """A named policy document, parsed and checked for shape when built."""

    name: str
    statements: tuple[Statement, ...]
    version: str | None = "2012-10-17"

    @classmethod
    def from_document(cls, name: str, document: str | Mapping[str, Any], *,
                      resource_required: bool = True) -> Policy:
        """Parse a JSON policy document (string or dict); bad shape -> InvalidParameterError.

        ``resource_required=False`` for a role trust policy, the one policy without Resource.
        """
        try:
            doc = json.loads(document) if isinstance(document, str) else document
        except json.JSONDecodeError as exc:
            raise InvalidParameterError(f"policy {name!r} is not valid JSON: {exc}") from None
        if not isinstance(doc, Mapping) or "Statement" not in doc:
            raise InvalidParameterError(f"policy {name!r} has no Statement")
        version = doc.get("Version")
        if version is not None and version not in VERSIONS:
            raise InvalidParameterError(f"policy {name!r}: Version must be one of "
                                        f"{', '.join(VERSIONS)}, got {version!r}")
        raw = doc["Statement"]
        statements = tuple(
            _parse_statement(name, i, st, version == "2012-10-17", resource_required)
            for i, st in enumerate(raw if isinstance(raw, list) else [raw])
        )
        return cls(name=name, statements=statements, version=version)

    def to_document(self) -> dict[str, Any]:
        """Back to a JSON-serialisable document (for display and for AWS APIs)."""
        out = []
        for st in self.statements:
            item: dict[str, Any] = {"Effect": st.effect}
            if st.sid:
                item["Sid"] = st.sid
            if st.principals is not None:
                item["Principal"] = {"AWS": list(st.principals)}
            for key, values in (("Action", st.actions), ("NotAction", st.not_actions),
                                ("Resource", st.resources), ("NotResource", st.not_resources)):
                if values:
                    item[key] = list(values)
            if st.conditions:
                item["Condition"] = {op: {k: list(v) for k, v in kv.items()}
                                     for op, kv in st.conditions.items()}
            out.append(item)
        return {**({"Version": self.version} if self.version else {}), "Statement": out}


def _parse_statement(policy: str, index: int, st: Any, variables: bool = True,
                     resource_required: bool = True) -> Statement:
    where = f"policy {policy!r} statement {index}"
    if not isinstance(st, Mapping):
        raise InvalidParameterError(f"{where} is not an object")
    effect = st.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise InvalidParameterError(f"{where}: Effect must be Allow or Deny, got {effect!r}")
    if ("Action" in st) == ("NotAction" in st):
        raise InvalidParameterError(f"{where}: exactly one of Action/NotAction is required")
    if resource_required and ("Resource" in st) == ("NotResource" in st):
        raise InvalidParameterError(f"{where}: exactly one of Resource/NotResource is required")
    for element in ("Action", "NotAction", "Resource", "NotResource"):
        if element in st:
            values = _as_list(st[element])
            if not values or not all(isinstance(v, str) and v for v in values):
                raise InvalidParameterError(
                    f"{where}: {element} must be a non-empty string or list of non-empty "
                    f"strings, got {st[element]!r}")
    principals: tuple[str, ...] | None = None
    if "Principal" in st or "NotPrincipal" in st:
        if "NotPrincipal" in st:
            raise InvalidParameterError(f"{where}: NotPrincipal is not supported")
        principal = st["Principal"]
        if principal == "*":
            principals = ("*",)
        elif isinstance(principal, Mapping):
            principals = tuple(str(p) for p in _as_list(principal.get("AWS")))
        else:
            raise InvalidParameterError(f"{where}: unsupported Principal {principal!r}")
    conditions: dict[str, dict[str, tuple[str, ...]]] = {}
    for op, block in (st.get("Condition") or {}).items():
        if not isinstance(block, Mapping):
            raise InvalidParameterError(f"{where}: condition {op!r} is not an object")
        _, base, _ = _operator(op)  # validates the operator name
        conditions[op] = {str(k): tuple(_str(v) for v in _as_list(val))
                          for k, val in block.items()}
        for key, given in conditions[op].items():
            if not given and base != "Null":
                raise InvalidParameterError(f"{where}: condition {op} {key!r} has no values")
            if base in ("IpAddress", "NotIpAddress"):
                for value in given:
                    try:
                        ipaddress.ip_network(value, strict=False)
                    except ValueError:
                        raise InvalidParameterError(
                            f"{where}: {value!r} is not an IP address or CIDR range") from None
    return Statement(
        effect=effect,
        actions=tuple(str(a) for a in _as_list(st.get("Action"))),
        not_actions=tuple(str(a) for a in _as_list(st.get("NotAction"))),
        resources=tuple(str(r) for r in _as_list(st.get("Resource"))),
        not_resources=tuple(str(r) for r in _as_list(st.get("NotResource"))),
        principals=principals,
        conditions=conditions,
        sid=st.get("Sid"),
        index=index,
        variables=variables,
    )


def _str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_SESSION_ARN = re.compile(r"arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/(.+)")
_IAM_ARN = re.compile(r"arn:([\w-]+):iam::(\d{12}):(user|role|root)(/.*)?")


@dataclass(frozen=True)
class Caller:
    """Who asks, as a resource-based policy's ``Principal`` is matched against it.

    ``arn`` is the caller's own ARN (the session ARN for a role session), ``account`` its
    account, ``role_arn`` the role a session belongs to (``None`` for anything else).
    """

    arn: str
    account: str
    role_arn: str | None = None

    @classmethod
    def of(cls, arn: str, principal_arn: str | None = None) -> Caller | None:
        """The caller for an ARN; ``principal_arn`` (``aws:PrincipalArn``) gives a session's
        role ARN with its path, which the session ARN does not carry."""
        session = _SESSION_ARN.fullmatch(arn)
        if session:
            partition, account, role, _ = session.groups()
            role_arn = principal_arn if principal_arn and principal_arn.endswith(
                f"/{role}") else f"arn:{partition}:iam::{account}:role/{role}"
            return cls(arn, account, role_arn)
        iam = _IAM_ARN.fullmatch(arn)
        return cls(arn, iam.group(2)) if iam else None


@dataclass(frozen=True)
class Request:
    """What is being asked: action, resource ARN, the caller and the request's condition keys.

    Condition keys are looked up case-insensitively, as in AWS. ``caller`` defaults to the one
    :meth:`Caller.of` derives from ``principal`` and ``aws:PrincipalArn``.
    """

    action: str
    resource: str
    principal: str | None = None
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    caller: Caller | None = None

    def who(self) -> Caller | None:
        if self.caller is not None:
            return self.caller
        if self.principal is None:
            return None
        principal_arn = self.value("aws:PrincipalArn")
        return Caller.of(self.principal, principal_arn if isinstance(principal_arn, str)
                         else None)

    def value(self, key: str) -> ContextValue:
        lowered = key.lower()
        for k, v in self.context.items():
            if k.lower() == lowered:
                return v
        return None

    def has(self, key: str) -> bool:
        lowered = key.lower()
        return any(k.lower() == lowered and v is not None for k, v in self.context.items())


@dataclass(frozen=True)
class Decision:
    """The outcome, and the statement that decided it (``policy#sid`` or ``policy#index``)."""

    effect: Literal["Allow", "ExplicitDeny", "ImplicitDeny"]
    statement: str | None = None

    @property
    def allowed(self) -> bool:
        return self.effect == "Allow"

    def __str__(self) -> str:
        return self.effect + (f" by {self.statement}" if self.statement else "")


def evaluate(
    request: Request,
    *,
    identity: Sequence[Policy] | None,
    session: Sequence[Policy] | None = None,
    resource: Sequence[Policy] = (),
) -> Decision:
    """Decide a same-account request the way AWS does.

    :param identity: the principal's identity-based policies; ``None`` means identity
        evaluation is not emulated (the sandbox lets moto decide it), so only explicit denies,
        session policies and resource-policy grants can decide.
    :param session: session policies passed to AssumeRole; when given, an Allow needs them too,
        except from a resource-based policy that names the session itself.
    :param resource: resource-based policies (e.g. the bucket policy).

    The rules for who a resource-based policy names are in the module docstring.
    """
    groups: list[tuple[str, Sequence[Policy]]] = [("resource", resource)]
    if identity is not None:
        groups.append(("identity", identity))
    if session is not None:
        groups.append(("session", session))
    for _, policies in groups:
        hit = _first_match(policies, request, "Deny")
        if hit:
            return Decision("ExplicitDeny", hit)
    caller = request.who()
    is_session = caller is not None and caller.role_arn is not None
    # A grant naming the caller itself (a session's own ARN, or an IAM user's ARN without
    # session policies) stands on its own.
    direct = _first_match(resource, request, "Allow", grant="self")
    if direct and (is_session or session is None):
        return Decision("Allow", direct)
    # A grant naming the role (or the user, or anyone) joins the identity-based policies,
    # before the session policy narrows them.
    before_session = direct or _first_match(resource, request, "Allow", grant="identity")
    if identity is None:
        allowed: str | None = before_session or "(identity not emulated)"
    else:
        allowed = before_session or _first_match(identity, request, "Allow")
    if not allowed:
        return Decision("ImplicitDeny", None)
    if session is not None:
        session_allow = _first_match(session, request, "Allow")
        if not session_allow:
            return Decision("ImplicitDeny", None)
        return Decision("Allow", before_session or session_allow)
    return Decision("Allow", None if allowed == "(identity not emulated)" else allowed)


def _first_match(
    policies: Iterable[Policy], request: Request, effect: str, grant: str | None = None
) -> str | None:
    """The first statement with this effect that matches; ``grant`` restricts to resource
    policy statements naming the caller itself (``"self"``) or its role, user or anyone
    (``"identity"``)."""
    for policy in policies:
        for st in policy.statements:
            if st.effect != effect or (grant is not None and st.principals is None):
                continue
            if grant is not None and _grant_kind(st.principals or (), request.who(),
                                                 _account_of(request.resource)) != grant:
                continue
            if _statement_matches(st, request):
                return f"{policy.name}#{st.sid or st.index}"
    return None


def _account_of(arn: str) -> str | None:
    """The account an ARN names (``None`` for S3 ARNs and ``*``, which name none)."""
    parts = arn.split(":", 5)
    return parts[4] if len(parts) == 6 and parts[4] else None


def _grant_kind(principals: tuple[str, ...], caller: Caller | None,
                resource_account: str | None = None) -> str | None:
    """How a Principal element names the caller: ``self`` (its own ARN), ``identity`` (its
    role, or anyone), ``account`` (its account: a delegation to IAM, no grant), or ``None``.

    Naming the caller's account on a resource of *another* account (a KMS key ARN carries its
    account) is the resource half of a cross-account grant, so it counts as ``identity``: the
    evaluator decides from the resource owner's side (the caller's own account must also allow
    it on AWS, which the evaluator cannot see).
    """
    if caller is None:
        return "identity" if "*" in principals else None
    kinds = set()
    for p in principals:
        if p == caller.arn:
            kinds.add("self")
        elif p == "*" or (caller.role_arn is not None and p == caller.role_arn):
            kinds.add("identity")
        elif p in (caller.account, f"arn:{caller.arn.split(':')[1]}:iam::{caller.account}:root"):
            foreign = resource_account is not None and resource_account != caller.account
            kinds.add("identity" if foreign else "account")
    for kind in ("self", "identity", "account"):
        if kind in kinds:
            return kind
    return None


def _statement_matches(st: Statement, request: Request) -> bool:
    try:
        if st.principals is not None and _grant_kind(st.principals, request.who()) is None:
            return False
        if st.actions and not any(_glob(a, request.action, ci=True) for a in st.actions):
            return False
        if st.not_actions and any(_glob(a, request.action, ci=True) for a in st.not_actions):
            return False
        if st.resources and not any(
            _glob(_substitute(r, request, st.variables), request.resource)
            for r in st.resources
        ):
            return False
        if st.not_resources and any(
            _glob(_substitute(r, request, st.variables), request.resource)
            for r in st.not_resources
        ):
            return False
        return all(
            _condition(op, key, values, request, st.variables)
            for op, block in st.conditions.items()
            for key, values in block.items()
        )
    except _Missing:
        return False


# Literal "*" and "?" (from ${*}, ${?} or inside a substituted value) travel as these sentinels,
# so they are never taken for wildcards.
_LIT_STAR, _LIT_QMARK = "\x00", "\x01"


def _glob(pattern: str, value: str, ci: bool = False) -> bool:
    """IAM wildcard match: ``*`` any run, ``?`` one character, nothing else is special."""
    if ci:
        pattern, value = pattern.lower(), value.lower()
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        elif ch == _LIT_STAR:
            parts.append(re.escape("*"))
        elif ch == _LIT_QMARK:
            parts.append(re.escape("?"))
        else:
            parts.append(re.escape(ch))
    return re.fullmatch("".join(parts), value, flags=re.S) is not None


def _literal(text: str) -> str:
    return text.replace(_LIT_STAR, "*").replace(_LIT_QMARK, "?")


def _substitute(text: str, request: Request, variables: bool = True) -> str:
    """Policy variables replaced by the request's values (only in 2012-10-17 policies)."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        default = None
        with_default = _VAR_DEFAULT.fullmatch(name)
        if with_default:
            name, default = with_default.groups()
        if name == "*":
            return _LIT_STAR
        if name == "?":
            return _LIT_QMARK
        if name == "$":
            return "$"
        value = request.value(name)
        if value is None or isinstance(value, list | tuple):
            if default is not None:
                return default.replace("*", _LIT_STAR).replace("?", _LIT_QMARK)
            raise _Missing(name)
        return _str(value).replace("*", _LIT_STAR).replace("?", _LIT_QMARK)

    if not variables or "${" not in text:
        return text
    return _VAR.sub(repl, text)


# -- conditions -----------------------------------------------------------------------------------

_BASE_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
    "StringLike", "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan",
    "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals",
    "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan",
    "DateGreaterThanEquals", "Bool", "Null", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike",
    "IpAddress", "NotIpAddress", "BinaryEquals",
}


def _operator(op: str) -> tuple[str | None, str, bool]:
    set_op = None
    if ":" in op:
        set_op, op_name = op.split(":", 1)
        if set_op not in ("ForAnyValue", "ForAllValues"):
            raise InvalidParameterError(f"unsupported set operator {set_op!r}")
    else:
        op_name = op
    if_exists = op_name.endswith("IfExists")
    base = op_name[: -len("IfExists")] if if_exists else op_name
    if base == "Null" and (if_exists or set_op):
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists
        raise InvalidParameterError(f"{op!r}: Null cannot be combined with IfExists or a set "
                                    "operator")
    if base not in _BASE_OPERATORS:
        raise InvalidParameterError(f"unsupported condition operator {op!r}")
    return set_op, base, if_exists


def _negated(base: str) -> bool:
    return "Not" in base


def _condition(op: str, key: str, values: tuple[str, ...], request: Request,
               variables: bool = True) -> bool:
    set_op, base, if_exists = _operator(op)
    present = request.has(key)
    if base == "Null":
        want_absent = any(v.lower() == "true" for v in values)
        return (not present) if want_absent else present
    raw = request.value(key)
    request_values = [_str(v) for v in _as_list(raw)] if present else []
    policy_values = [_substitute(v, request, variables) for v in values]
    if set_op == "ForAllValues":
        # Documented: true when every request value matches, and also when there are none.
        return all(_single(base, rv, policy_values) for rv in request_values)
    if set_op == "ForAnyValue":
        return any(_single(base, rv, policy_values) for rv in request_values)
    if not present:
        # Absent key: IfExists -> true; negated operators -> true; otherwise false.
        return if_exists or _negated(base)
    return any(_single(base, rv, policy_values) for rv in request_values) if not _negated(
        base
    ) else all(_single(base, rv, policy_values) for rv in request_values)


def _single(base: str, actual: str, expected: list[str]) -> bool:
    """One request value against the policy's values (OR; a negated operator is NOR)."""
    positive = base.replace("Not", "", 1) if _negated(base) else base
    hit = any(_compare(positive, actual, e) for e in expected)
    return not hit if _negated(base) else hit


def _compare(op: str, actual: str, expected: str) -> bool:
    if op == "StringEquals":
        return actual == _literal(expected)
    if op == "StringEqualsIgnoreCase":
        return actual.lower() == _literal(expected).lower()
    if op == "StringLike":
        return _glob(expected, actual)
    if op == "Bool":
        return actual.lower() == expected.lower()
    if op in ("ArnEquals", "ArnLike"):
        return _arn_like(expected, actual)
    if op == "IpAddress":
        try:
            return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
        except ValueError:
            return False
    if op == "BinaryEquals":
        return actual == expected
    if op.startswith("Numeric"):
        try:
            a, e = float(actual), float(expected)
        except ValueError:
            return False
        return _ordered(op[len("Numeric"):], a, e)
    if op.startswith("Date"):
        try:
            da, de = _date(actual), _date(expected)
        except ValueError:
            return False
        return _ordered(op[len("Date"):], da, de)
    raise InvalidParameterError(f"unsupported condition operator {op!r}")


def _arn_like(pattern: str, arn: str) -> bool:
    """ArnLike/ArnEquals: each of the six colon-separated parts matched on its own, so a
    wildcard never spans a colon of the first five separators."""
    want, have = pattern.split(":", 5), arn.split(":", 5)
    if len(want) != 6 or len(have) != 6:
        return False
    return all(_glob(w, h) for w, h in zip(want, have, strict=True))


def _ordered(rel: str, a: Any, e: Any) -> bool:
    return {
        "Equals": a == e, "LessThan": a < e, "LessThanEquals": a <= e,
        "GreaterThan": a > e, "GreaterThanEquals": a >= e,
    }[rel]


def _date(value: str) -> dt.datetime:
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
