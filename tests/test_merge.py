"""Merging by identifier: the kit's entries replaced in place, everyone else's kept."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securepipe.errors import InvalidParameterError
from securepipe.merge import merge_bucket_policy, merge_by_id, merge_lifecycle_rules, merge_policy
from securepipe.sandbox.account import Sandbox

SIDS = st.sampled_from(["A", "B", "C", "D", "E"])
ENTRY = st.fixed_dictionaries({"Sid": SIDS, "v": st.integers(0, 3)})


@given(existing=st.lists(ENTRY, max_size=6),
       ours=st.lists(ENTRY, max_size=4, unique_by=lambda e: e["Sid"]))
def test_merge_properties(existing: list[dict], ours: list[dict]) -> None:
    merged = merge_by_id(existing, ours)
    our_sids = {e["Sid"] for e in ours}
    # every one of ours is there exactly once, as given
    for entry in ours:
        assert [m for m in merged if m["Sid"] == entry["Sid"]] == [entry]
    # everyone else's entries are kept, unchanged and in order
    assert [m for m in merged if m["Sid"] not in our_sids] == [
        e for e in existing if e["Sid"] not in our_sids]
    # idempotent: merging again changes nothing
    assert merge_by_id(merged, ours) == merged


def test_merge_refuses_entries_it_could_not_find_again() -> None:
    with pytest.raises(InvalidParameterError):
        merge_by_id([], [{"Effect": "Deny"}])
    with pytest.raises(InvalidParameterError):
        merge_by_id([], [{"Sid": "A"}, {"Sid": "A"}])
    with pytest.raises(InvalidParameterError):
        merge_by_id([], [{"ID": ""}], key="ID")


def test_merge_policy_accepts_a_single_statement_object() -> None:
    doc = {"Version": "2012-10-17", "Statement": {"Sid": "Theirs", "Effect": "Allow"}}
    merged = merge_policy(doc, [{"Sid": "Ours", "Effect": "Deny"}])
    assert [s["Sid"] for s in merged["Statement"]] == ["Theirs", "Ours"]


def test_bucket_policy_round_trip_keeps_foreign_statements(sandbox: Sandbox) -> None:
    s3, bucket = sandbox.session.client("s3"), sandbox.resources.bucket("raw")
    theirs = {"Sid": "Theirs", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
              "Resource": f"arn:aws:s3:::{bucket}"}
    ours = {"Sid": "Ours", "Effect": "Deny", "Principal": "*", "Action": "s3:PutBucketAcl",
            "Resource": f"arn:aws:s3:::{bucket}"}
    assert merge_bucket_policy(s3, bucket, [theirs]) is True
    assert merge_bucket_policy(s3, bucket, [ours]) is True
    assert merge_bucket_policy(s3, bucket, [ours]) is False  # nothing to change
    doc = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert [s["Sid"] for s in doc["Statement"]] == ["Theirs", "Ours"]


def test_lifecycle_round_trip_merges_by_rule_id(sandbox: Sandbox) -> None:
    s3, bucket = sandbox.session.client("s3"), sandbox.resources.bucket("raw")
    theirs = {"ID": "theirs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
              "Expiration": {"Days": 30}}
    ours = {"ID": "ours", "Status": "Enabled", "Filter": {"Prefix": "raw/"},
            "Expiration": {"Days": 7}}
    merge_lifecycle_rules(s3, bucket, [theirs])
    merge_lifecycle_rules(s3, bucket, [ours])
    merge_lifecycle_rules(s3, bucket, [{**ours, "Expiration": {"Days": 5}}])
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [(r["ID"], r["Expiration"]["Days"]) for r in rules] == [("theirs", 30), ("ours", 5)]
    merge_lifecycle_rules(s3, bucket, [ours], replace=True)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in rules] == ["ours"]
