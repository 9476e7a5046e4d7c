"""The emulation's reading of DynamoDB requests into fine-grained access control condition keys
(securepipe.sandbox.ddbexpr, securepipe.sandbox.requests.dynamodb_condition_keys), and the kit's
consent-table statements evaluated on that reading: whatever spelling an expression uses
(placeholders, nested paths, any clause), naming an attribute outside a statement's list is
refused, and what the reader cannot read is refused as ambiguous."""

from __future__ import annotations

import contextlib
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securepipe.policy import Policy, Request, evaluate
from securepipe.provision import AccountLayout, kit_role_policy
from securepipe.retention.consent import CLAIM_FIELDS, CONSENT_FIELDS, INDEX_FIELDS
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.ddbexpr import ExpressionReader, UnreadableExpression, tokenize
from securepipe.sandbox.requests import dynamodb_condition_keys

ACCOUNT, REGION = "111122223333", "eu-west-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/securepipe-consent"
_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"
LAYOUT = AccountLayout(ACCOUNT, REGION, data_key_arn=_KEY + "1234abcd-12ab-34cd-56ef-1234567890ab",
                       archive_key_arn=_KEY + "2234abcd-12ab-34cd-56ef-1234567890ab",
                       signing_key_arn=_KEY + "3234abcd-12ab-34cd-56ef-1234567890ab")
#: What a compromised ingest role must never write on a speaker's item (finding F9).
FORBIDDEN = ("status", "erased_at", "erasure_head", "wrapped_key", "consent_date", "withdrawn",
             "retention_until", "term_days", "key_id", "erasure_journal")
#: ... and what it must never read.
UNREADABLE = ("wrapped_key", "key_id", "key_arn", "erasure_head", "erasure_journal")


def _keys(operation: str, **payload: Any) -> dict[str, Any]:
    keys, why = dynamodb_condition_keys(operation, {"TableName": "securepipe-consent",
                                                    **payload}, "securepipe-consent",
                                        ACCOUNT, REGION)
    assert why is None, why
    return keys


def _why(operation: str, **payload: Any) -> str | None:
    return dynamodb_condition_keys(operation, {"TableName": "securepipe-consent", **payload},
                                   "securepipe-consent", ACCOUNT, REGION)[1]


def _allowed(role: str, operation: str, keys: dict[str, Any]) -> bool:
    policy = Policy.from_document(role, kit_role_policy(role, LAYOUT))  # type: ignore[arg-type]
    request = Request(f"dynamodb:{operation}", TABLE, f"arn:aws:sts::{ACCOUNT}:assumed-role/"
                      f"securepipe-{role}/s", keys)
    return evaluate(request, identity=[policy]).allowed


# -- the reader ------------------------------------------------------------------------------

def test_the_kits_own_expressions_read_as_their_top_level_attributes() -> None:
    reader = ExpressionReader({"#status": "status", "#n": "count"})
    eq = reader.condition("attribute_exists(speaker) AND #status = :active AND "
                          "attribute_not_exists(withdrawn) AND erasure_head.#n = :seq")
    assert eq == [("status", ":active")]        # the nested path is no top-level equality
    reader.update("REMOVE wrapped_key SET #status = :e, erased_at = :t")
    reader.finish()
    assert reader.attributes == {"speaker", "status", "withdrawn", "erasure_head",
                                 "wrapped_key", "erased_at"}
    claim = ExpressionReader({})
    claim.update("SET claimant = if_not_exists(claimant, :me)")
    claim.condition("attribute_not_exists(claimant) OR claimant = :me")
    assert claim.attributes == {"claimant"}


@pytest.mark.parametrize("expression, names, top", [
    ("SET a.b[3].#c = :v", {"#c": "erased_at"}, {"a"}),          # nested: the top counts
    ("SET #x = :v", {"#x": "erasure_head.count"}, {"erasure_head.count"}),  # one literal name
    ("SET a = b + :one, c = list_append(if_not_exists(c, :e), :l)", {}, {"a", "b", "c"}),
    ("add samples :s delete other :d remove x[0]", {}, {"samples", "other", "x"}),
])
def test_update_paths(expression: str, names: dict[str, str], top: set[str]) -> None:
    reader = ExpressionReader(names)
    reader.update(expression)
    reader.finish()
    assert reader.attributes == top


@pytest.mark.parametrize("expression, names", [
    ("SET a = :v SET b = :w", {}),             # a clause twice
    ("SET a = :v,", {}),
    ("SET #x = :v", {}),                       # undefined placeholder
    ("SET a = :v", {"#unused": "status"}),     # defined, never used (AWS refuses it too)
    ("SET a[x] = :v", {}),
    ("SET a = :v; REMOVE status", {}),
    ("SET a = :v REMOVE", {}),
    ("SET a = frobnicate(b)", {}),
    ("SET 'status' = :v", {}),
    ("SET a\u00e9 = :v", {}),
    ("SET # = :v", {}),
    ("", {}),
])
def test_what_the_update_grammar_does_not_produce_is_unreadable(
        expression: str, names: dict[str, str]) -> None:
    reader = ExpressionReader(names)
    with pytest.raises(UnreadableExpression):
        reader.update(expression)
        reader.finish()


@pytest.mark.parametrize("expression", [
    "a = :v OR", "a BETWEEN :x", "a IN ()", "(a = :v", "a = :v)", "NOT", "a", ":v",
    "attribute_exists(:v)", "a == :v", "size(a) = ", "AND a = :v",
])
def test_what_the_condition_grammar_does_not_produce_is_unreadable(expression: str) -> None:
    with pytest.raises(UnreadableExpression):
        ExpressionReader({}).condition(expression)


def test_condition_grammar_reads_every_form() -> None:
    reader = ExpressionReader({"#p": "p"})
    reader.condition("NOT (a <> :x) AND (b BETWEEN :l AND :h OR c IN (:1, :2, d)) AND "
                     "begins_with(#p, :s) AND contains(e[1], f) AND size(g.h) >= :n AND "
                     "attribute_type(i, :t)")
    reader.finish()
    assert reader.attributes == {"a", "b", "c", "d", "p", "e", "f", "g", "i"}


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable + "\u00e9#:", max_size=40))
def test_any_text_is_read_or_refused_never_crashes(text: str) -> None:
    for read in (lambda r: r.update(text), lambda r: r.condition(text),
                 lambda r: r.projection(text)):
        with contextlib.suppress(UnreadableExpression):
            read(ExpressionReader({}))


def test_tokens() -> None:
    assert [t.kind for t in tokenize("#a.b[10] <> :v")] == [
        "placeholder", ".", "name", "[", "number", "]", "<>", "value"]
    with pytest.raises(UnreadableExpression):
        tokenize("a = 1b")


# -- the request's condition keys -----------------------------------------------------------

def test_condition_keys_of_the_gates_requests() -> None:
    read = _keys("GetItem", Key={"speaker": {"S": "spk01"}}, ConsistentRead=True,
                 ProjectionExpression="#a0, #a1", ExpressionAttributeNames={
                     "#a0": "speaker", "#a1": "status"})
    assert read == {"dynamodb:LeadingKeys": ["spk01"], "dynamodb:Attributes": [
        "speaker", "status"], "dynamodb:Select": "SPECIFIC_ATTRIBUTES"}
    full = _keys("GetItem", Key={"speaker": {"S": "spk01"}})
    assert full["dynamodb:Select"] == "ALL_ATTRIBUTES"
    claim = _keys("UpdateItem", Key={"speaker": {"S": "claim#c01/s-1"}},
                  UpdateExpression="SET claimant = if_not_exists(claimant, :me)",
                  ConditionExpression="attribute_not_exists(claimant) OR claimant = :me",
                  ExpressionAttributeValues={":me": {"S": "spk01"}}, ReturnValues="UPDATED_OLD")
    assert claim == {"dynamodb:LeadingKeys": ["claim#c01/s-1"],
                     "dynamodb:Attributes": ["claimant", "speaker"],
                     "dynamodb:ReturnValues": "UPDATED_OLD"}
    index = _keys("UpdateItem", Key={"speaker": {"S": "spk01"}}, UpdateExpression="ADD samples :s",
                  ConditionExpression="attribute_exists(speaker)",
                  ExpressionAttributeValues={":s": {"SS": ["c01/s-1"]}})
    assert index["dynamodb:ReturnValues"] == "NONE"      # always present on a write
    assert index["dynamodb:Attributes"] == ["samples", "speaker"]
    scan = _keys("Scan")
    assert "dynamodb:LeadingKeys" not in scan and scan["dynamodb:Select"] == "ALL_ATTRIBUTES"


@pytest.mark.parametrize("operation, payload", [
    ("UpdateItem", {"Key": {"speaker": {"S": "s"}}, "UpdateExpression": "SET a = :v",
                    "AttributeUpdates": {"b": {"Action": "DELETE"}}}),
    ("GetItem", {"Key": {"speaker": {"S": "s"}}, "ProjectionExpression": "a",
                 "AttributesToGet": ["b"]}),
    ("UpdateItem", {"Key": {"speaker": {"S": "s"}}, "UpdateExpression": "SET a = :v",
                    "ConditionExpression": "b = :v", "Expected": {"c": {"Exists": False}}}),
    # Legacy parameters alone too: moto ignores GetItem's AttributesToGet (the whole item comes
    # back) and applies AttributeUpdates to a key attribute (AWS refuses), so no reading of
    # them describes what moto does.
    ("GetItem", {"Key": {"speaker": {"S": "s"}}, "AttributesToGet": ["speaker", "status"]}),
    ("UpdateItem", {"Key": {"speaker": {"S": "s"}},
                    "AttributeUpdates": {"speaker": {"Action": "PUT", "Value": {"S": "t"}}}}),
    ("UpdateItem", {"Key": {"speaker": {"S": "s"}},
                    "AttributeUpdates": {"samples": {"Action": "ADD",
                                                     "Value": {"SS": ["x"]}}}}),
    ("UpdateItem", {"Key": {"speaker": {"S": "s"}}, "UpdateExpression": "SET a = :v",
                    "Expected": {"c": {"Exists": False}}, "ConditionalOperator": "AND"}),
    ("Scan", {"ScanFilter": {"a": {"ComparisonOperator": "NOT_NULL"}}}),
    ("Query", {"KeyConditions": {"speaker": {"ComparisonOperator": "EQ",
                                             "AttributeValueList": [{"S": "s"}]}}}),
    ("UpdateItem", {"Key": {"speaker": {"S": "s"}}, "UpdateExpression": "SET a = :v",
                    "ReturnValues": "EVERYTHING"}),
    ("UpdateItem", {"Key": {"speaker": {"S": "s"}}, "UpdateExpression": "SET a = :v",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}),
    ("UpdateItem", {"Key": {"speaker": {"S": "s"}}, "UpdateExpression": "SET a = :v",
                    "Smuggled": "SET status = :v"}),
    ("UpdateItem", {"Key": {"speaker": {"M": {}}}, "UpdateExpression": "SET a = :v"}),
    ("UpdateItem", {"Key": {}, "UpdateExpression": "SET a = :v"}),
    ("GetItem", {"Key": {"speaker": {"S": "s"}}, "Select": "ALL_ATTRIBUTES"}),
    ("Scan", {"ProjectionExpression": "a", "Select": "ALL_ATTRIBUTES"}),
    ("Scan", {"ExpressionAttributeNames": "not a map"}),
])
def test_requests_the_reader_cannot_read_are_ambiguous(operation: str,
                                                        payload: dict[str, Any]) -> None:
    assert _why(operation, **payload) is not None


# -- the ingest role's consent-table statements, on that reading ----------------------------

def test_the_gate_fits_the_ingest_and_uploader_statements() -> None:
    names = {f"#a{n}": a for n, a in enumerate(CONSENT_FIELDS)}
    read = _keys("GetItem", Key={"speaker": {"S": "spk01"}},
                 ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
    assert _allowed("ingest", "GetItem", read) and _allowed("uploader", "GetItem", read)
    claim_names = {f"#a{n}": a for n, a in enumerate(CLAIM_FIELDS)}
    claim_read = _keys("GetItem", Key={"speaker": {"S": "claim#c01/s-1"}},
                       ProjectionExpression=", ".join(claim_names),
                       ExpressionAttributeNames=claim_names)
    assert _allowed("ingest", "GetItem", claim_read)
    assert not _allowed("uploader", "GetItem", claim_read)      # speaker items only
    index = _keys("UpdateItem", Key={"speaker": {"S": "spk01"}}, UpdateExpression="ADD samples :s",
                  ConditionExpression="attribute_exists(speaker)")
    assert set(index["dynamodb:Attributes"]) <= set(INDEX_FIELDS)
    assert _allowed("ingest", "UpdateItem", index)
    assert not _allowed("uploader", "UpdateItem", index)        # the uploader never writes


@pytest.mark.parametrize("operation, payload", [
    # (a) back-date erased_at; (b) re-activate, edit the erasure head
    ("UpdateItem", {"Key": {"speaker": {"S": "spk01"}}, "UpdateExpression": "SET erased_at = :t"}),
    ("UpdateItem", {"Key": {"speaker": {"S": "spk01"}}, "UpdateExpression": "SET #s = :a",
                    "ExpressionAttributeNames": {"#s": "status"}}),
    ("UpdateItem", {"Key": {"speaker": {"S": "spk01"}},
                    "UpdateExpression": "REMOVE erasure_head"}),
    # (c) a journal item, even with the attributes the index write may name
    ("UpdateItem", {"Key": {"speaker": {"S": "journal#spk01#0"}},
                    "UpdateExpression": "ADD samples :s"}),
    ("UpdateItem", {"Key": {"speaker": {"S": "journal#spk01#0"}},
                    "UpdateExpression": "SET claimant = :s"}),
    # a claim attribute on a speaker item, an index attribute on a claim item
    ("UpdateItem", {"Key": {"speaker": {"S": "spk01"}}, "UpdateExpression": "SET claimant = :s"}),
    ("UpdateItem", {"Key": {"speaker": {"S": "claim#c01/s-1"}},
                    "UpdateExpression": "ADD samples :s"}),
    # reads beyond the consent fields, or all of them
    ("GetItem", {"Key": {"speaker": {"S": "spk01"}}}),
    ("GetItem", {"Key": {"speaker": {"S": "spk01"}}, "ProjectionExpression": "wrapped_key"}),
    ("GetItem", {"Key": {"speaker": {"S": "journal#spk01#0"}}, "ProjectionExpression": "speaker"}),
    ("UpdateItem", {"Key": {"speaker": {"S": "spk01"}}, "UpdateExpression": "ADD samples :s",
                    "ReturnValues": "ALL_OLD"}),
    # a condition on a forbidden attribute is naming it too
    ("UpdateItem", {"Key": {"speaker": {"S": "spk01"}}, "UpdateExpression": "ADD samples :s",
                    "ConditionExpression": "begins_with(wrapped_key, :p)"}),
    ("Scan", {}),
    ("Scan", {"ProjectionExpression": "samples"}),
])
def test_compromised_ingest_requests_are_refused(operation: str,
                                                 payload: dict[str, Any]) -> None:
    assert not _allowed("ingest", operation, _keys(operation, **payload))


_IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s.upper() not in {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD",
                                "DELETE"})


@st.composite
def _spelled(draw: st.DrawFn, attribute: str, names: dict[str, str]) -> str:
    """A path whose top-level attribute is ``attribute``: bare or through a placeholder,
    optionally nested further (whose parts may be placeholders too)."""
    top = attribute
    if not draw(st.booleans()):
        placeholder = "#t" + draw(_IDENT)
        if names.setdefault(placeholder, attribute) == attribute:
            top = placeholder
    path = top
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            path += f"[{draw(st.integers(0, 99))}]"
        else:
            part = draw(_IDENT)
            if draw(st.booleans()):
                names.setdefault("#n" + part, draw(_IDENT))   # nested: any name
                part = "#n" + part
            path += "." + part
    return path


@st.composite
def _attack(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A request from the ingest role naming a forbidden attribute somewhere, among the ones
    its statements allow, on a speaker or a claim item."""
    names: dict[str, str] = {}
    where = draw(st.sampled_from(("set", "remove", "add", "condition", "projection")))
    # a read may name the consent fields (the gate reads them), never the key material or
    # the erasure journal's head; a write may name none of FORBIDDEN
    pool = UNREADABLE if where == "projection" else FORBIDDEN
    forbidden = draw(_spelled(draw(st.sampled_from(pool)), names))
    allowed_path = draw(_spelled(draw(st.sampled_from(("samples", "claimant", "speaker"))),
                                 names))
    key = draw(st.sampled_from(("spk01", "claim#c01/s-1")))
    payload: dict[str, Any] = {"Key": {"speaker": {"S": key}}}
    operation = "UpdateItem"
    if where == "set":
        payload["UpdateExpression"] = draw(st.sampled_from((
            f"SET {allowed_path} = :v, {forbidden} = :w",
            f"ADD {allowed_path} :s SET {forbidden} = if_not_exists({forbidden}, :w)",
            f"SET {allowed_path} = {forbidden}")))
    elif where == "remove":
        payload["UpdateExpression"] = f"ADD {allowed_path} :s REMOVE {forbidden}"
    elif where == "add":
        payload["UpdateExpression"] = f"add {forbidden} :s"
    elif where == "condition":
        payload["UpdateExpression"] = f"ADD {allowed_path} :s"
        payload["ConditionExpression"] = draw(st.sampled_from((
            f"attribute_exists({forbidden})", f"{forbidden} = :v",
            f"attribute_exists(speaker) OR NOT ({forbidden} BETWEEN :a AND :b)",
            f"size({forbidden}) > :n")))
    else:
        operation = "GetItem"
        payload["ProjectionExpression"] = f"{allowed_path}, {forbidden}"
    if names:
        payload["ExpressionAttributeNames"] = names
    return operation, payload


@settings(max_examples=300, deadline=None)
@given(_attack())
def test_any_spelling_of_a_forbidden_attribute_is_refused(attack: tuple[str, dict[str, Any]]
                                                          ) -> None:
    operation, payload = attack
    keys, why = dynamodb_condition_keys(operation, {"TableName": "securepipe-consent", **payload},
                                        "securepipe-consent", ACCOUNT, REGION)
    if why is not None:        # unreadable (e.g. a placeholder drawn twice): refused as such
        return
    assert (set(FORBIDDEN) | set(UNREADABLE)) & set(keys["dynamodb:Attributes"])
    assert not _allowed("ingest", operation, keys)


def test_leading_keys_follow_the_tables_key_schema(sandbox: Sandbox) -> None:
    """With a partition and a sort key, the leading key is the partition key's value (moto's
    key schema), in a Key and in a Query's key condition; a Key that is not the table's key
    attributes, or a Query whose partition key equality cannot be read, is ambiguous."""
    ddb = sandbox.session.client("dynamodb")
    ddb.create_table(TableName="two-keys", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}])
    account, region = sandbox.account_id, sandbox.region

    def read(operation: str, **payload: Any) -> tuple[dict[str, Any], str | None]:
        return dynamodb_condition_keys(operation, {"TableName": "two-keys", **payload},
                                       "two-keys", account, region)

    keys, why = read("GetItem", Key={"sk": {"N": "7"}, "pk": {"S": "p1"}})
    assert why is None and keys["dynamodb:LeadingKeys"] == ["p1"]
    assert read("GetItem", Key={"pk": {"S": "p1"}})[1] is not None
    keys, why = read("Query", KeyConditionExpression="#k = :p AND sk > :n",
                     ExpressionAttributeNames={"#k": "pk"},
                     ExpressionAttributeValues={":p": {"S": "p2"}, ":n": {"N": "1"}})
    assert why is None and keys["dynamodb:LeadingKeys"] == ["p2"]
    assert keys["dynamodb:Attributes"] == ["pk", "sk"]
    assert read("Query", KeyConditionExpression="pk = :p OR sk = :n",
                ExpressionAttributeValues={":p": {"S": "p2"}, ":n": {"N": "1"}})[1] is not None
