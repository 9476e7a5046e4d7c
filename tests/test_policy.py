"""The policy evaluator against examples from AWS's IAM documentation.

Each vector names the documentation page it comes from; the expected decision is what that page
says AWS decides.
"""

from __future__ import annotations

import pytest

from securepipe.errors import InvalidParameterError
from securepipe.policy import Policy, Request, evaluate

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BUCKET = "amzn-s3-demo-bucket"


def _p(name: str, *statements: dict) -> Policy:
    return Policy.from_document(name, {"Version": "2012-10-17", "Statement": list(statements)})


# reference_policies_evaluation-logic.html: explicit deny beats allow; no allow = implicit deny
def test_explicit_deny_overrides_allow() -> None:
    allow = _p("allow", {"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    deny = _p("deny", {"Sid": "NoDelete", "Effect": "Deny", "Action": "s3:DeleteObject",
                       "Resource": "*"})
    req = Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/k", ALICE)
    decision = evaluate(req, identity=[allow, deny])
    assert decision.effect == "ExplicitDeny" and decision.statement == "deny#NoDelete"
    assert evaluate(Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/k", ALICE),
                    identity=[allow, deny]).allowed


def test_no_matching_allow_is_implicit_deny() -> None:
    only_get = _p("get", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    req = Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/k", ALICE)
    assert evaluate(req, identity=[only_get]).effect == "ImplicitDeny"


# access_policies_session.html: effective permissions are the intersection of the role's
# identity policies and the session policy; a session policy cannot grant more.
def test_session_policy_intersects_identity() -> None:
    role = _p("role", {"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    session = _p("session", {"Effect": "Allow", "Action": "s3:GetObject",
                             "Resource": f"arn:aws:s3:::{BUCKET}/c01/*"})
    own = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/c01/x", ALICE)
    other = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/c02/x", ALICE)
    put = Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/c01/x", ALICE)
    assert evaluate(own, identity=[role], session=[session]).statement == "session#0"
    assert evaluate(other, identity=[role], session=[session]).effect == "ImplicitDeny"
    assert evaluate(put, identity=[role], session=[session]).effect == "ImplicitDeny"
    narrow_role = _p("narrow", {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"})
    assert not evaluate(own, identity=[narrow_role], session=[session]).allowed


# reference_policies_elements_notaction.html: "Allow NotAction iam:*" allows everything but IAM
def test_not_action() -> None:
    policy = _p("p", {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate(Request("s3:GetObject", "*", ALICE), identity=[policy]).allowed
    assert not evaluate(Request("iam:CreateUser", "*", ALICE), identity=[policy]).allowed


def test_not_resource() -> None:
    policy = _p("p", {"Effect": "Deny", "Action": "s3:*",
                      "NotResource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]})
    outside = Request("s3:GetObject", "arn:aws:s3:::other/k", ALICE)
    inside = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/k", ALICE)
    assert evaluate(outside, identity=None, resource=[]).allowed
    assert evaluate(outside, identity=[policy]).effect == "ExplicitDeny"
    assert evaluate(inside, identity=[policy]).effect == "ImplicitDeny"


def test_action_matching_is_case_insensitive_with_wildcards() -> None:
    policy = _p("p", {"Effect": "Allow", "Action": "S3:get*", "Resource": "*"})
    assert evaluate(Request("s3:GetObjectVersion", "*", ALICE), identity=[policy]).allowed
    assert not evaluate(Request("s3:PutObject", "*", ALICE), identity=[policy]).allowed


def test_resource_wildcards_and_question_mark() -> None:
    policy = _p("p", {"Effect": "Allow", "Action": "s3:GetObject",
                      "Resource": f"arn:aws:s3:::{BUCKET}/c0?/*"})
    assert evaluate(Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/c01/a", ALICE),
                    identity=[policy]).allowed
    assert not evaluate(Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/c10/a", ALICE),
                        identity=[policy]).allowed
    # brackets are not special in IAM
    bracket = _p("b", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "[ab]"})
    assert not evaluate(Request("s3:GetObject", "a", ALICE), identity=[bracket]).allowed
    assert evaluate(Request("s3:GetObject", "[ab]", ALICE), identity=[bracket]).allowed


# example_policies_s3_home-directory-console.html / reference_policies_variables.html:
# ListBucket with an s3:prefix condition built from a policy variable.
def test_s3_prefix_condition_with_policy_variable() -> None:
    policy = _p("home", {
        "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
        "Condition": {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}},
    })
    bucket = f"arn:aws:s3:::{BUCKET}"
    own = Request("s3:ListBucket", bucket, ALICE,
                  {"aws:username": "alice", "s3:prefix": "home/alice/"})
    other = Request("s3:ListBucket", bucket, ALICE,
                    {"aws:username": "alice", "s3:prefix": "home/bob/"})
    no_prefix = Request("s3:ListBucket", bucket, ALICE, {"aws:username": "alice"})
    no_username = Request("s3:ListBucket", bucket, ALICE, {"s3:prefix": "home/alice/"})
    assert evaluate(own, identity=[policy]).allowed
    assert not evaluate(other, identity=[policy]).allowed
    assert not evaluate(no_prefix, identity=[policy]).allowed
    # reference_policies_variables.html: a variable with no value makes the element not match
    assert not evaluate(no_username, identity=[policy]).allowed


def test_substituted_values_are_literal() -> None:
    policy = _p("p", {"Effect": "Allow", "Action": "s3:GetObject",
                      "Resource": f"arn:aws:s3:::{BUCKET}/${{aws:username}}/*"})
    # A username of "*" must not turn into a wildcard.
    req = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/bob/k", ALICE, {"aws:username": "*"})
    assert not evaluate(req, identity=[policy]).allowed
    star = _p("s", {"Effect": "Allow", "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{BUCKET}/${{*}}/k"})
    assert evaluate(Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/*/k", ALICE),
                    identity=[star]).allowed
    assert not evaluate(Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/x/k", ALICE),
                        identity=[star]).allowed


# example_bucket_policies.html: deny requests that do not use TLS (aws:SecureTransport)
TLS_ONLY = _p("bucket", {
    "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
    "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
})


@pytest.mark.parametrize(("secure", "effect"), [("false", "ExplicitDeny"), ("true", "Allow")])
def test_tls_only_bucket_policy(secure: str, effect: str) -> None:
    req = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/k", ALICE,
                  {"aws:SecureTransport": secure})
    assert evaluate(req, identity=None, resource=[TLS_ONLY]).effect == effect


# reference_policies_elements_condition_operators.html: a negated operator is true when the key
# is absent; ...IfExists is true when the key is absent.
SSE_DENY = _p("bucket", {
    "Sid": "DenyNoKms", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
    "Resource": f"arn:aws:s3:::{BUCKET}/*",
    "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
})


@pytest.mark.parametrize(("header", "effect"), [
    (None, "ExplicitDeny"), ("AES256", "ExplicitDeny"), ("aws:kms", "Allow"),
])
def test_negated_operator_with_absent_key(header: str | None, effect: str) -> None:
    ctx = {} if header is None else {"s3:x-amz-server-side-encryption": header}
    req = Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/k", ALICE, ctx)
    assert evaluate(req, identity=None, resource=[SSE_DENY]).effect == effect


def test_if_exists() -> None:
    policy = _p("p", {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*",
                      "Condition": {"StringEqualsIfExists": {"ec2:InstanceType": "t2.micro"}}})
    assert evaluate(Request("ec2:RunInstances", "*", ALICE), identity=[policy]).allowed
    assert evaluate(Request("ec2:RunInstances", "*", ALICE, {"ec2:InstanceType": "t2.micro"}),
                    identity=[policy]).allowed
    assert not evaluate(Request("ec2:RunInstances", "*", ALICE, {"ec2:InstanceType": "m5.large"}),
                        identity=[policy]).allowed


# reference_policies_elements_condition_operators.html#Conditions_Null
def test_null_condition() -> None:
    deny_long_term = _p("p", {"Effect": "Deny", "Action": "*", "Resource": "*",
                              "Condition": {"Null": {"aws:TokenIssueTime": "true"}}})
    allow = _p("a", {"Effect": "Allow", "Action": "*", "Resource": "*"})
    long_term = Request("s3:GetObject", "*", ALICE)
    temporary = Request("s3:GetObject", "*", ALICE, {"aws:TokenIssueTime": "2026-11-26T00:00:00Z"})
    assert evaluate(long_term, identity=[allow, deny_long_term]).effect == "ExplicitDeny"
    assert evaluate(temporary, identity=[allow, deny_long_term]).allowed


# reference_policies_elements_condition_operators.html#Conditions_Date
def test_date_condition() -> None:
    policy = _p("p", {"Effect": "Allow", "Action": "*", "Resource": "*",
                      "Condition": {"DateLessThan": {"aws:CurrentTime": "2026-12-01T00:00:00Z"}}})
    before = Request("s3:GetObject", "*", ALICE, {"aws:CurrentTime": "2026-11-26T12:00:00Z"})
    after = Request("s3:GetObject", "*", ALICE, {"aws:CurrentTime": "2026-12-02T00:00:00Z"})
    assert evaluate(before, identity=[policy]).allowed
    assert not evaluate(after, identity=[policy]).allowed


def test_numeric_condition() -> None:
    policy = _p("p", {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
                      "Condition": {"NumericLessThanEquals": {"s3:max-keys": "10"}}})
    assert evaluate(Request("s3:ListBucket", "*", ALICE, {"s3:max-keys": "10"}),
                    identity=[policy]).allowed
    assert not evaluate(Request("s3:ListBucket", "*", ALICE, {"s3:max-keys": "11"}),
                        identity=[policy]).allowed
    assert not evaluate(Request("s3:ListBucket", "*", ALICE, {"s3:max-keys": "ten"}),
                        identity=[policy]).allowed


# reference_policies_condition-single-vs-multi-valued-context-keys.html: ForAllValues is true
# for an empty set; ForAnyValue is false for it.
def test_set_operators() -> None:
    all_policy = _p("all", {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {
        "ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]}}})
    any_policy = _p("any", {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {
        "ForAnyValue:StringEquals": {"aws:TagKeys": ["env", "team"]}}})

    def req(tags: list[str] | None) -> Request:
        return Request("ec2:CreateTags", "*", ALICE, {} if tags is None else {"aws:TagKeys": tags})

    assert evaluate(req(["env"]), identity=[all_policy]).allowed
    assert not evaluate(req(["env", "owner"]), identity=[all_policy]).allowed
    assert evaluate(req(None), identity=[all_policy]).allowed
    assert evaluate(req(["owner", "team"]), identity=[any_policy]).allowed
    assert not evaluate(req(None), identity=[any_policy]).allowed


def test_multiple_values_or_and_negated_nor() -> None:
    policy = _p("p", {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "StringNotEquals": {"aws:RequestedRegion": ["eu-west-1", "eu-central-1"]}}})
    for region, effect in (("eu-west-1", "Allow"), ("eu-central-1", "Allow"),
                           ("us-east-1", "ExplicitDeny")):
        req = Request("s3:GetObject", "*", ALICE, {"aws:RequestedRegion": region})
        assert evaluate(req, identity=None, resource=[policy]).effect == effect


def test_condition_keys_are_case_insensitive() -> None:
    req = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/k", ALICE,
                  {"AWS:SECURETRANSPORT": "false"})
    assert evaluate(req, identity=None, resource=[TLS_ONLY]).effect == "ExplicitDeny"


# reference_policies_evaluation-logic.html: same account, a resource-based policy that names the
# principal allows even without an identity-based allow.
def test_resource_policy_grant_to_principal() -> None:
    grant = _p("bucket", {"Effect": "Allow", "Principal": {"AWS": ALICE},
                          "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"})
    req = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/k", ALICE)
    assert evaluate(req, identity=[], resource=[grant]).allowed
    bob = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/k", f"arn:aws:iam::{ACCOUNT}:user/bob")
    assert not evaluate(bob, identity=[], resource=[grant]).allowed
    # Naming the account delegates to the account's IAM policies: no grant by itself
    # (reference_policies_elements_principal.html#principal-accounts).
    root = _p("root", {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                       "Action": "s3:GetObject", "Resource": "*"})
    assert not evaluate(bob, identity=[], resource=[root]).allowed
    anything = _p("id", {"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    assert evaluate(bob, identity=[anything], resource=[root]).allowed


@pytest.mark.parametrize("doc", [
    "not json", {"Version": "2012-10-17"}, {"Statement": [{"Effect": "Maybe", "Action": "*"}]},
    {"Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "s3:*"}]},
    {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                    "Condition": {"StringSortOf": {"k": "v"}}}]},
])
def test_malformed_policies_are_rejected(doc: object) -> None:
    with pytest.raises(InvalidParameterError):
        Policy.from_document("bad", doc)  # type: ignore[arg-type]


def test_round_trip_to_document() -> None:
    doc = TLS_ONLY.to_document()
    again = Policy.from_document("again", doc)
    req = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/k", ALICE, {"aws:SecureTransport": False})
    assert evaluate(req, identity=None, resource=[again]).effect == "ExplicitDeny"


# -- AWS's principal rules for role sessions (access_policies.html#policies_session) ----------

ROLE = f"arn:aws:iam::{ACCOUNT}:role/team/contractor"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/contractor/c01"
OBJECT = f"arn:aws:s3:::{BUCKET}/raw/c02/secret"
ROLE_WIDE = _p("role", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
OWN_PREFIX = _p("session", {"Effect": "Allow", "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{BUCKET}/raw/c01/*"})


def _grant(principal: str) -> Policy:
    return _p("bucket", {"Effect": "Allow", "Principal": {"AWS": principal},
                         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"})


def _session_request() -> Request:
    return Request("s3:GetObject", OBJECT, SESSION, {"aws:PrincipalArn": ROLE})


@pytest.mark.parametrize(("principal", "allowed"), [
    (f"arn:aws:iam::{ACCOUNT}:root", False),   # the account: delegates to IAM, session limits
    (ACCOUNT, False),
    (ROLE, False),                             # the role: added before the session policy
    (SESSION, True),                           # the session itself: added after it
    ("*", False),                              # anyone: read as a grant to the role
    (f"arn:aws:iam::999999999999:role/x{ACCOUNT}", False),
])
def test_session_policy_against_resource_grants(principal: str, allowed: bool) -> None:
    decision = evaluate(_session_request(), identity=[ROLE_WIDE], session=[OWN_PREFIX],
                        resource=[_grant(principal)])
    assert decision.allowed is allowed, decision


def test_a_role_grant_counts_for_the_roles_sessions() -> None:
    """A grant naming the role stands in for an identity policy; the session policy still
    decides (and allows here, on the session's own prefix)."""
    own = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/raw/c01/a", SESSION,
                  {"aws:PrincipalArn": ROLE})
    assert evaluate(own, identity=[], session=[OWN_PREFIX], resource=[_grant(ROLE)]).allowed
    assert not evaluate(own, identity=[], session=[OWN_PREFIX], resource=[]).allowed
    assert not evaluate(own, identity=[], session=[OWN_PREFIX],
                        resource=[_grant(f"arn:aws:iam::{ACCOUNT}:root")]).allowed


def test_account_is_matched_exactly_not_as_a_substring() -> None:
    other = f"arn:aws:iam::999999999999:user/{ACCOUNT}/mallory"
    req = Request("s3:GetObject", OBJECT, other)
    deny = _p("bucket", {"Effect": "Deny", "Principal": {"AWS": ACCOUNT},
                         "Action": "s3:*", "Resource": "*"})
    assert evaluate(req, identity=[ROLE_WIDE], resource=[deny]).allowed
    mine = Request("s3:GetObject", OBJECT, f"arn:aws:iam::{ACCOUNT}:user/bob")
    assert evaluate(mine, identity=[ROLE_WIDE], resource=[deny]).effect == "ExplicitDeny"


def test_arnlike_matches_segment_by_segment() -> None:
    st = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
          "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/*"}}}
    policy = _p("p", st)
    ok = Request("s3:GetObject", OBJECT, None, {"aws:PrincipalArn": ROLE})
    assert evaluate(ok, identity=[policy]).allowed
    # a '*' in the resource part does not reach back across the account's colon
    sneaky = _p("p", {**st, "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*"}}})
    assert not evaluate(ok, identity=[sneaky]).allowed
    spans = _p("p", {**st, "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:*:role/*"}}})
    assert not evaluate(ok, identity=[spans]).allowed


def test_variables_with_defaults_and_version_semantics() -> None:
    st = {"Effect": "Allow", "Action": "s3:GetObject",
          "Resource": f"arn:aws:s3:::{BUCKET}/home/${{aws:username, 'shared'}}/*"}
    with_version = Policy.from_document("p", {"Version": "2012-10-17", "Statement": [st]})
    bob = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/home/bob/x", None,
                  {"aws:username": "bob"})
    anon = Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/home/shared/x")
    assert evaluate(bob, identity=[with_version]).allowed
    assert evaluate(anon, identity=[with_version]).allowed
    literal = f"arn:aws:s3:::{BUCKET}/home/${{aws:username, 'shared'}}/x"
    no_version = Policy.from_document("p", {"Statement": [st]})
    assert not evaluate(bob, identity=[no_version]).allowed
    assert evaluate(Request("s3:GetObject", literal), identity=[no_version]).allowed
    old = Policy.from_document("p", {"Version": "2008-10-17", "Statement": [st]})
    assert not evaluate(bob, identity=[old]).allowed


def test_ip_operators_decide_on_source_ip() -> None:
    deny = _p("bucket", {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
                         "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}})
    local = Request("s3:GetObject", OBJECT, ALICE, {"aws:SourceIp": "127.0.0.1"})
    inside = Request("s3:GetObject", OBJECT, ALICE, {"aws:SourceIp": "10.1.2.3"})
    assert evaluate(local, identity=[ROLE_WIDE], resource=[deny]).effect == "ExplicitDeny"
    assert evaluate(inside, identity=[ROLE_WIDE], resource=[deny]).allowed


@pytest.mark.parametrize("statement", [
    {"Effect": "Allow", "Action": [], "Resource": "*"},
    {"Effect": "Allow", "Action": "", "Resource": "*"},
    {"Effect": "Allow", "Action": "s3:*"},
    {"Effect": "Allow", "Action": "s3:*", "Resource": []},
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
     "Condition": {"NullIfExists": {"s3:prefix": "true"}}},
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
     "Condition": {"IpAddress": {"aws:SourceIp": "not-an-ip"}}},
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
     "Condition": {"StringEquals": {"s3:prefix": []}}},
])
def test_what_the_evaluator_cannot_read_is_refused_at_construction(statement: dict) -> None:
    with pytest.raises(InvalidParameterError):
        Policy.from_document("bad", {"Version": "2012-10-17", "Statement": [statement]})
    with pytest.raises(InvalidParameterError):
        Policy.from_document("bad", {"Version": "2012-17-10", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def test_a_key_policy_naming_another_account_is_a_grant_to_it() -> None:
    """From the key owner's side, naming another account is that account's half of a
    cross-account grant (the access review's 'open to another account' question)."""
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k"
    foreign = "arn:aws:iam::999999999999:user/eve"
    policy = _p("key-policy", {"Effect": "Allow", "Principal": {"AWS": "999999999999"},
                               "Action": "kms:Decrypt", "Resource": "*"})
    assert evaluate(Request("kms:Decrypt", key, foreign), identity=[], resource=[policy]).allowed
    own = f"arn:aws:iam::{ACCOUNT}:user/bob"
    own_root = _p("key-policy", {"Effect": "Allow", "Principal": {"AWS": ACCOUNT},
                                 "Action": "kms:Decrypt", "Resource": "*"})
    assert not evaluate(Request("kms:Decrypt", key, own), identity=[],
                        resource=[own_root]).allowed
