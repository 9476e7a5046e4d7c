"""The emulation's reading of DynamoDB requests into fine-grained access control condition keys
(securepipe.sandbox.ddbexpr, securepipe.sandbox.requests.dynamodb_condition_keys), and the kit's
consent-table statements evaluated on that reading: whatever spelling an expression uses
(placeholders, nested paths, any clause), naming an attribute outside a statement's list is
refused, and what the reader cannot read is refused as ambiguous."""

from __future__ import annotations

import contextlib
import dataclasses
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
    # the claim and its release as ConsentRegistry sends them (F4: the claiming call's token)
    claim = _keys("UpdateItem", Key={"speaker": {"S": "claim#c01/s-1"}},
                  UpdateExpression=("SET claimant = if_not_exists(claimant, :me), "
                                    "claim_token = :token"),
                  ConditionExpression="attribute_not_exists(claimant) OR claimant = :me",
                  ReturnValues="UPDATED_OLD")
    release = _keys("UpdateItem", Key={"speaker": {"S": "claim#c01/s-1"}},
                    UpdateExpression="REMOVE claimant, claim_token",
                    ConditionExpression="claimant = :me AND claim_token = :token")
    for write in (claim, release):
        assert sorted(write["dynamodb:Attributes"]) == sorted(CLAIM_FIELDS)
        assert _allowed("ingest", "UpdateItem", write)
        assert not _allowed("uploader", "UpdateItem", write)
    assert not _allowed("ingest", "UpdateItem", _keys(        # the token on a speaker item
        "UpdateItem", Key={"speaker": {"S": "spk01"}}, UpdateExpression="SET claim_token = :t"))
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


# -- TransactWriteItems: authorised per action ----------------------------------------------

def _transact(sandbox: Sandbox) -> Any:
    """A reader of TransactWriteItems in the sandbox's account, with the consent table made
    (a Put's leading key is read from moto's key schema), and an evaluator of its parts."""
    from securepipe.retention.consent import ConsentRegistry
    from securepipe.sandbox.requests import dynamodb_transact_write_parts

    ConsentRegistry(sandbox.session, "securepipe-consent")
    account, region = sandbox.account_id, sandbox.region
    table = f"arn:aws:dynamodb:{region}:{account}:table/securepipe-consent"
    key = f"arn:aws:kms:{region}:{account}:key/"
    layout = AccountLayout(account, region,
                           data_key_arn=key + "1234abcd-12ab-34cd-56ef-1234567890ab",
                           archive_key_arn=key + "2234abcd-12ab-34cd-56ef-1234567890ab",
                           signing_key_arn=key + "3234abcd-12ab-34cd-56ef-1234567890ab")

    def parts(*items: dict[str, Any], **extra: Any) -> Any:
        return dynamodb_transact_write_parts({"TransactItems": list(items), **extra}, account,
                                             region, {})

    def allowed(role: str, *items: dict[str, Any], speaker_keys: bool = True) -> bool:
        found, why = parts(*items)
        assert why is None, why
        doc = kit_role_policy(role, dataclasses.replace(layout, speaker_keys=speaker_keys))  # type: ignore[arg-type]
        policy = Policy.from_document(role, doc)
        return all(evaluate(Request(p.action, p.resource,
                                    f"arn:aws:sts::{account}:assumed-role/securepipe-{role}/s",
                                    dict(p.context)), identity=[policy]).allowed
                   for p in found)

    return table, parts, allowed


def _check(key: str, condition: str, **extra: Any) -> dict[str, Any]:
    return {"ConditionCheck": {"TableName": "securepipe-consent", "Key": {"speaker": {"S": key}},
                               "ConditionExpression": condition, **extra}}


def _put(item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"Put": {"TableName": "securepipe-consent", "Item": item, **extra}}


_KEY_ITEM = {"speaker": {"S": "key#spk01"}, "wrapped_key": {"B": "AAAA"},
             "key_id": {"S": "sk-1"}, "key_arn": {"S": "arn:aws:kms:eu-west-1:1:key/x"},
             "key_created_at": {"S": "2026-01-01T00:00:00+00:00"}}
_STORE = (_check("spk01", "attribute_exists(speaker) AND #status = :active AND "
                 "attribute_not_exists(erased_at) AND attribute_not_exists(key_arn)",
                 ExpressionAttributeNames={"#status": "status"},
                 ExpressionAttributeValues={":active": {"S": "active"}}),
          _put(_KEY_ITEM, ConditionExpression="attribute_not_exists(speaker)"))


def test_a_transaction_reads_as_its_actions(sandbox: Sandbox) -> None:
    """The kit's key store (ConsentRegistry.store_wrapped_key) is two requests to authorise:
    a ConditionCheckItem on the speaker's item naming only the fields it tests, a PutItem on
    the key item naming only the key fields, each on the table, inside TransactWriteItems."""
    from securepipe.retention.consent import KEY_CHECK_FIELDS, KEY_FIELDS

    table, parts, _ = _transact(sandbox)
    (check, put), why = parts(*_STORE, ClientRequestToken="t-1")
    assert why is None
    assert (check.action, put.action) == ("dynamodb:ConditionCheckItem", "dynamodb:PutItem")
    assert check.resource == put.resource == table
    assert check.context["dynamodb:LeadingKeys"] == ["spk01"]
    assert sorted(check.context["dynamodb:Attributes"]) == sorted(KEY_CHECK_FIELDS)
    assert put.context["dynamodb:LeadingKeys"] == ["key#spk01"]
    assert sorted(put.context["dynamodb:Attributes"]) == sorted(KEY_FIELDS)
    for part in (check, put):
        assert part.context["dynamodb:ReturnValues"] == "NONE"
        assert part.context["dynamodb:EnclosingOperation"] == "TransactWriteItems"
    (leak,), _ = parts(_check("spk01", "attribute_exists(speaker)",
                              ReturnValuesOnConditionCheckFailure="ALL_OLD"))
    assert leak.context["dynamodb:ReturnValues"] == "ALL_OLD"


@pytest.mark.parametrize("items, extra", [
    ([], {}),
    ([_STORE[0]], {"Smuggled": 1}),
    ([{**_STORE[0], **_STORE[1]}], {}),                              # two kinds in one action
    ([{"Get": {"TableName": "securepipe-consent", "Key": {"speaker": {"S": "s"}}}}], {}),
    ([{"ConditionCheck": {"TableName": "securepipe-consent",
                          "Key": {"speaker": {"S": "s"}}}}], {}),    # no condition
    ([_check("s", "attribute_exists(speaker)",
             ReturnValuesOnConditionCheckFailure="EVERYTHING")], {}),
    ([_check("s", "attribute_exists(speaker)", ReturnValues="ALL_OLD")], {}),
    ([_check("s", "attribute_exists(speaker)", Expected={"a": {"Exists": False}})], {}),
    ([_check("s", "attribute_exists(#unused)")], {}),
    ([{"Update": {"TableName": "securepipe-consent", "Key": {"speaker": {"S": "s"}}}}], {}),
    ([{"Delete": {"TableName": "bad name!", "Key": {"speaker": {"S": "s"}}}}], {}),
    ([_put({"speaker": {"M": {}}})], {}),
])
def test_transactions_the_reader_cannot_read_are_ambiguous(
        sandbox: Sandbox, items: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    _, parts, _ = _transact(sandbox)
    found, why = parts(*items, **extra)
    assert why is not None and found == ()


def test_the_key_store_and_the_shredding_fit_their_roles(sandbox: Sandbox) -> None:
    _, _, allowed = _transact(sandbox)
    assert allowed("ingest", *_STORE)
    assert not allowed("ingest", *_STORE, speaker_keys=False)        # only with speaker keys
    shred = ({"Delete": {"TableName": "securepipe-consent",
                         "Key": {"speaker": {"S": "key#spk01"}},
                         "ConditionExpression": "wrapped_key = :b",
                         "ExpressionAttributeValues": {":b": {"B": "AAAA"}}}},
             {"Update": {"TableName": "securepipe-consent", "Key": {"speaker": {"S": "spk01"}},
                         "UpdateExpression": "REMOVE wrapped_key SET #s = :s, erased_at = :t",
                         "ConditionExpression": "attribute_exists(speaker)",
                         "ExpressionAttributeNames": {"#s": "status"},
                         "ExpressionAttributeValues": {":s": {"S": "erased"},
                                                       ":t": {"S": "x"}}}})
    assert allowed("eraser", *shred) and not allowed("ingest", *shred)
    # the trainer reads and unwraps speaker keys to decrypt, and neither stores nor shreds one
    assert not allowed("trainer", *_STORE) and not allowed("trainer", _STORE[1])
    assert not allowed("trainer", *shred) and not allowed("trainer", shred[0])
    assert not allowed("eraser", {"Delete": {"TableName": "securepipe-consent",
                                             "Key": {"speaker": {"S": "journal#spk01#0"}}}})


_ERASE = {"Update": {"TableName": "securepipe-consent", "Key": {"speaker": {"S": "spk01"}},
                     "UpdateExpression": "SET erased_at = :t"}}


@pytest.mark.parametrize("items", [
    # the key item: never deleted, never updated, never with a consent field, never read back
    [{"Delete": {"TableName": "securepipe-consent", "Key": {"speaker": {"S": "key#spk01"}}}}],
    [{"Update": {"TableName": "securepipe-consent", "Key": {"speaker": {"S": "key#spk01"}},
                 "UpdateExpression": "SET wrapped_key = :b"}}],
    [_put({**_KEY_ITEM, "status": {"S": "active"}})],
    [_put(_KEY_ITEM, ConditionExpression="attribute_not_exists(speaker)",
          ReturnValuesOnConditionCheckFailure="ALL_OLD")],
    # a Put anywhere else: a speaker's item, a journal entry, a claim
    [_put({"speaker": {"S": "spk01"}, "wrapped_key": {"B": "AAAA"}})],
    [_put({"speaker": {"S": "journal#spk01#0"}})],
    [_put({"speaker": {"S": "claim#c01/s-1"}})],
    # the speaker's item: checked only on the fields the store tests, never written
    [_check("spk01", "attribute_exists(erasure_head)")],
    [_check("spk01", "contains(samples, :s)")],
    [_check("spk01", "attribute_exists(speaker)", ReturnValuesOnConditionCheckFailure="ALL_OLD")],
    [_check("journal#spk01#0", "attribute_exists(speaker)")],
    [_STORE[1], _ERASE],
])
def test_compromised_speaker_key_ingest_transactions_are_refused(
        sandbox: Sandbox, items: list[dict[str, Any]]) -> None:
    _, _, allowed = _transact(sandbox)
    assert not allowed("ingest", *items)


def test_speaker_key_ingest_outside_a_transaction(sandbox: Sandbox) -> None:
    """A plain PutItem of a key item is refused (the Put is allowed only inside
    TransactWriteItems); a key item is read only projected on the key fields."""
    from securepipe.retention.consent import KEY_FIELDS

    _transact(sandbox)
    account, region = sandbox.account_id, sandbox.region
    key = f"arn:aws:kms:{region}:{account}:key/"
    layout = AccountLayout(account, region, speaker_keys=True,
                           data_key_arn=key + "1234abcd-12ab-34cd-56ef-1234567890ab",
                           archive_key_arn=key + "2234abcd-12ab-34cd-56ef-1234567890ab",
                           signing_key_arn=key + "3234abcd-12ab-34cd-56ef-1234567890ab")
    policy = Policy.from_document("ingest", kit_role_policy("ingest", layout))

    def allowed(operation: str, **payload: Any) -> bool:
        keys, why = dynamodb_condition_keys(operation, {"TableName": "securepipe-consent",
                                                        **payload}, "securepipe-consent",
                                            account, region)
        assert why is None, why
        return evaluate(Request(f"dynamodb:{operation}",
                                f"arn:aws:dynamodb:{region}:{account}:table/securepipe-consent",
                                "arn:aws:sts::1:assumed-role/securepipe-ingest/s", keys),
                        identity=[policy]).allowed

    names = {f"#a{n}": a for n, a in enumerate(KEY_FIELDS)}
    assert allowed("GetItem", Key={"speaker": {"S": "key#spk01"}},
                   ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
    assert not allowed("GetItem", Key={"speaker": {"S": "key#spk01"}})
    assert not allowed("PutItem", Item=_KEY_ITEM)
    assert not allowed("GetItem", Key={"speaker": {"S": "spk01"}},
                       ProjectionExpression="wrapped_key")
