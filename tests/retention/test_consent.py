"""Step 5: the consent registry (DynamoDB) and the retain-until rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from securepipe.data.dataset import Consent, Speaker, load_manifest
from securepipe.errors import (
    ConsentError,
    ConsentRecordError,
    ErasureInProgressError,
    InvalidParameterError,
    UnknownSpeakerError,
)
from securepipe.ids import validate_speaker_id
from securepipe.retention.consent import (
    BIPA_MAX_DAYS,
    MANIFEST_REFERENCE_DAY,
    ConsentRegistry,
    expires_at,
    lease_time,
)
from securepipe.sandbox.account import Sandbox

MANIFEST = load_manifest()
TABLE = "consent-test"


@pytest.fixture
def registry(sandbox: Sandbox) -> ConsentRegistry:
    reg = ConsentRegistry(sandbox.session, TABLE, kms_key_arn=sandbox.resources.kms_key_arn)
    reg.load_manifest_consents(MANIFEST)
    return reg


def _one_speaker(term_days: int, consent: dt.date = dt.date(2025, 1, 1)) -> SimpleNamespace:
    return SimpleNamespace(speakers=[Speaker("spk99", "c09", {}, Consent(
        "speech-model-training", consent, term_days, consent + dt.timedelta(days=term_days)))])


def test_manifest_loads_every_speaker_with_its_consent(registry: ConsentRegistry) -> None:
    records = registry.speakers()
    assert [r.speaker for r in records] == [s.speaker for s in MANIFEST.speakers]
    spk01 = registry.get("spk01")
    assert (spk01.contractor, spk01.purpose, spk01.term_days) == ("c01", "speech-model-training",
                                                                  365)
    assert spk01.status == "active" and not spk01.has_key and spk01.withdrawn is None
    assert registry.retain_until("spk01") == dt.date(2027, 2, 10)   # consent + 365 days
    assert registry.retain_until("spk08") == dt.date(2029, 1, 14)   # consent + 1095 days
    assert registry.longest_term_days() == 1095


def test_table_creation_and_loading_are_idempotent(sandbox: Sandbox,
                                                   registry: ConsentRegistry) -> None:
    registry.withdraw("spk02", dt.date(2026, 6, 1))
    again = ConsentRegistry(sandbox.session, TABLE)   # exists already: no error
    description = sandbox.session.client("dynamodb").describe_table(TableName=TABLE)["Table"]
    assert description["SSEDescription"]["KMSMasterKeyArn"] == sandbox.resources.kms_key_arn
    assert again.load_manifest_consents(MANIFEST) == len(MANIFEST.speakers)
    spk02 = again.get("spk02")                        # the reload did not undo the withdrawal
    assert spk02.withdrawn == dt.date(2026, 6, 1) and spk02.status == "withdrawn"


def test_withdrawal_moves_retain_until_and_keeps_the_earliest(registry: ConsentRegistry) -> None:
    assert registry.retain_until("spk03") == dt.date(2028, 2, 7)
    record = registry.withdraw("spk03", dt.datetime(2026, 12, 1, 15, 30, tzinfo=dt.UTC))
    assert record.status == "withdrawn" and record.withdrawn == dt.date(2026, 12, 1)
    assert registry.retain_until("spk03") == dt.date(2026, 12, 1)
    registry.withdraw("spk03", dt.date(2027, 1, 5))   # a later date never extends it
    assert registry.retain_until("spk03") == dt.date(2026, 12, 1)
    registry.withdraw("spk03", dt.date(2026, 11, 30))
    assert registry.retain_until("spk03") == dt.date(2026, 11, 30)


def test_three_years_from_last_interaction_caps_a_long_term(registry: ConsentRegistry) -> None:
    registry.load_manifest_consents(_one_speaker(term_days=2000))
    assert registry.retain_until("spk99") == dt.date(2025, 1, 1) + dt.timedelta(days=BIPA_MAX_DAYS)
    registry.record_interaction("spk99", dt.date(2026, 1, 1))   # interaction restarts the clock
    assert registry.retain_until("spk99") == dt.date(2026, 1, 1) + dt.timedelta(days=BIPA_MAX_DAYS)
    registry.record_interaction("spk99", dt.date(2025, 6, 1))   # never moves backwards
    assert registry.get("spk99").last_interaction == dt.date(2026, 1, 1)
    assert registry.longest_term_days() == BIPA_MAX_DAYS         # capped


def test_expiry_starts_at_midnight_utc_of_the_retain_until_date(registry: ConsentRegistry) -> None:
    record = registry.get("spk01")
    edge = expires_at(record.retain_until())
    assert edge == dt.datetime(2027, 2, 10, tzinfo=dt.UTC)
    assert record.expired(edge) and not record.expired(edge - dt.timedelta(microseconds=1))


def test_bad_input_is_refused(registry: ConsentRegistry) -> None:
    with pytest.raises(UnknownSpeakerError):
        registry.get("spk42")
    with pytest.raises(UnknownSpeakerError):
        registry.withdraw("spk42", dt.date(2026, 1, 1))
    assert registry.find("spk42") is None
    for hostile in ["", "spk/01", "spk 01", "*", "spk01\n", "sp\u00e9k", "a" * 65, None, 7]:
        with pytest.raises(InvalidParameterError):
            registry.get(hostile)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        registry.withdraw("spk01", dt.datetime(2026, 1, 1))   # naive: ambiguous day
    with pytest.raises(InvalidParameterError):
        ConsentRegistry(object(), "bad table name!")  # type: ignore[arg-type]


def test_speaker_id_rule() -> None:
    assert validate_speaker_id("spk01") == "spk01"
    assert validate_speaker_id("9f1c-4a2b_x") == "9f1c-4a2b_x"
    for hostile in ["-spk", "spk.01", "spk:01", "${aws:username}", "spk01 ", "\u0455pk01"]:
        with pytest.raises(InvalidParameterError):
            validate_speaker_id(hostile)


@pytest.mark.parametrize(("expression", "values", "field"), [
    ("REMOVE consent_date", None, "consent_date"),
    ("SET consent_date = :v", {":v": {"S": "2026-02-30"}}, "consent_date"),
    ("SET retention_until = :v", {":v": {"S": "soon"}}, "retention_until"),
    ("SET term_days = :v", {":v": {"S": "365"}}, "term_days"),
    ("SET #s = :v", {":v": {"S": "paused"}}, "status"),
    ("SET withdrawn = :v", {":v": {"N": "1"}}, "withdrawn"),
    ("SET erased_at = :v", {":v": {"S": "2026-01-01T00:00:00"}}, "erased_at"),
    ("SET term_days = :v", {":v": {"N": "99999999999"}}, "term_days"),        # would overflow
    ("SET last_interaction = :v", {":v": {"S": "9999-12-30"}}, "last_interaction"),
    ("SET erased_at = :v", {":v": {"S": "9999-12-31T23:00:00+00:00"}}, "erased_at"),
    ("SET withdrawn = :v", {":v": {"NULL": True}}, "withdrawn"),   # NULL is not "absent"
    ("REMOVE #s", None, "status"),                                 # missing is not "active"
    # a status in any case but the canonical one is not that status (never read as active)
    ("SET #s = :v", {":v": {"S": "Withdrawn"}}, "status"),
    ("SET #s = :v", {":v": {"S": "ACTIVE"}}, "status"),
    ("SET #s = :v", {":v": {"S": "Active"}}, "status"),
    ("SET #s = :v", {":v": {"S": "active "}}, "status"),
    ("SET #s = :v", {":v": {"N": "1"}}, "status"),
    # dates: exactly YYYY-MM-DD (fromisoformat alone takes ISO week dates and basic forms)
    ("SET withdrawn = :v", {":v": {"S": "2026-W05-3"}}, "withdrawn"),
    ("SET consent_date = :v", {":v": {"S": "2026-W053"}}, "consent_date"),
    ("SET retention_until = :v", {":v": {"S": "20270101"}}, "retention_until"),
    ("SET last_interaction = :v", {":v": {"S": "2026-\u0661\u0662-01"}}, "last_interaction"),
    ("SET erased_at = :v", {":v": {"S": "2026-W05-3T00:00:00+00:00"}}, "erased_at"),
    ("SET erased_at = :v", {":v": {"S": "20260128T000000+00:00"}}, "erased_at"),
])
def test_malformed_item_is_typed_and_registry_wide_reads_go_on(
        sandbox: Sandbox, registry: ConsentRegistry, expression: str,
        values: dict[str, Any] | None, field: str) -> None:
    kwargs: dict[str, Any] = {"TableName": TABLE, "Key": {"speaker": {"S": "spk04"}},
                              "UpdateExpression": expression}
    if values:
        kwargs["ExpressionAttributeValues"] = values
    if "#s" in expression:
        kwargs["ExpressionAttributeNames"] = {"#s": "status"}
    sandbox.session.client("dynamodb").update_item(**kwargs)
    with pytest.raises(ConsentRecordError) as bad:
        registry.get("spk04")
    assert (bad.value.speaker, bad.value.field) == ("spk04", field)
    records, errors = registry.scan()
    assert "spk04" not in {r.speaker for r in records} and len(records) == 9
    assert [(e.speaker, e.field) for e in errors] == [("spk04", field)]
    assert registry.longest_term_days() == 1095                  # goes on with the rest
    with pytest.raises(ConsentError) as refused:                 # and refuses writes for it
        registry.check_consent("spk04", dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    assert refused.value.reason == "malformed-record"


def test_duplicate_speakers_in_a_manifest_are_refused_before_any_write(
        sandbox: Sandbox) -> None:
    reg = ConsentRegistry(sandbox.session, "consent-dupes")
    twice = SimpleNamespace(speakers=[*_one_speaker(365).speakers, *_one_speaker(730).speakers])
    with pytest.raises(InvalidParameterError, match="twice"):
        reg.load_manifest_consents(twice)
    assert reg.speakers() == []


def test_dates_are_utc_whatever_the_offset(registry: ConsentRegistry) -> None:
    kiribati = dt.timezone(dt.timedelta(hours=14))
    late = dt.datetime(2026, 12, 2, 8, 0, tzinfo=kiribati)          # 2026-12-01 18:00 UTC
    assert registry.withdraw("spk03", late).withdrawn == dt.date(2026, 12, 1)
    record = dataclasses.replace(registry.get("spk01"), erased_at=late)
    assert record.retain_until() == dt.date(2026, 12, 1)


def test_rebase_keeps_the_timeline_relative_to_the_day_the_lesson_runs(
        sandbox: Sandbox) -> None:
    for day in (dt.date(2030, 1, 1), dt.date(2099, 6, 30)):
        reg = ConsentRegistry(sandbox.session, f"consent-{day.year}")
        reg.load_manifest_consents(MANIFEST, rebase_to=day)
        shift = day - MANIFEST_REFERENCE_DAY
        for spk in MANIFEST.speakers:
            record = reg.get(spk.speaker)
            assert record.consent_date == spk.consent.consent_date + shift
            assert record.retain_until() - day == (
                min(spk.consent.consent_date + dt.timedelta(days=spk.consent.term_days),
                    spk.consent.retention_until) - MANIFEST_REFERENCE_DAY)
        assert reg.check_consent("spk01", expires_at(day))           # active on that day


def test_admit_gates_and_indexes(registry: ConsentRegistry) -> None:
    day = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    contractor = registry.get("spk01").contractor
    registry.admit("spk01", "spk01_u1", contractor=contractor, at=day)
    registry.admit("spk01", "spk01_u1", contractor=contractor, at=day)    # idempotent
    assert registry.get("spk01").samples == {f"{contractor}/spk01_u1"}
    assert registry.sample_index() == {(contractor, "spk01_u1"): {"spk01"}}
    registry.withdraw("spk01", day)
    for speaker, at, reason in (("spk01", day, "withdrawn"), ("spk42", day, "unknown"),
                                ("spk09", dt.datetime(2027, 1, 2, tzinfo=dt.UTC), "expired"),
                                ("spk08", dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "not-yet")):
        with pytest.raises(ConsentError) as refused:
            registry.admit(speaker, f"{speaker}_u9", contractor="c01", at=at)
        assert refused.value.reason == reason
    assert registry.sample_index() == {(contractor, "spk01_u1"): {"spk01"}}   # nothing indexed
    for hostile in ("../x", "", "a b"):
        with pytest.raises(InvalidParameterError):
            registry.admit("spk02", hostile, contractor="c02", at=day)
    with pytest.raises(InvalidParameterError):
        registry.admit("spk02", "spk02_u1", contractor="../c02", at=day)


def test_admit_refuses_a_sample_another_speaker_holds_and_conflicts_stay_visible(
        sandbox: Sandbox, registry: ConsentRegistry) -> None:
    """A sample belongs to one speaker: a second speaker's admit of the same
    ``(contractor, sample)`` is refused (a typed ConsentError) and indexes nothing, while the
    same sample id under another contractor is a different sample. A clash that reached the
    table anyway (two admits at once, a hand-edited item) is kept, with both speakers."""
    day = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    registry.admit("spk01", "s-1", contractor="c01", at=day)
    with pytest.raises(ConsentError) as refused:
        registry.admit("spk05", "s-1", contractor="c01", at=day)
    assert refused.value.reason == "sample-conflict" and "spk01" in str(refused.value)
    assert registry.get("spk05").samples == frozenset()
    registry.admit("spk05", "s-1", contractor="c02", at=day)          # another contractor's s-1
    assert registry.sample_index() == {("c01", "s-1"): {"spk01"}, ("c02", "s-1"): {"spk05"}}

    sandbox.session.client("dynamodb").update_item(
        TableName=registry.table, Key={"speaker": {"S": "spk05"}},
        UpdateExpression="ADD samples :s", ExpressionAttributeValues={":s": {"SS": ["c01/s-1"]}})
    assert registry.sample_index()[("c01", "s-1")] == {"spk01", "spk05"}      # both, visibly
    with pytest.raises(ConsentError):                    # the claim still says whose it is
        registry.admit("spk05", "s-1", contractor="c01", at=day)
    registry.admit("spk01", "s-1", contractor="c01", at=day)     # the claimant's, idempotent
    assert registry.claimant("c01", "s-1") == "spk01"


def _admit_outcome(registry: ConsentRegistry, speaker: str, sample: str,
                   at: dt.datetime) -> str:
    try:
        registry.admit(speaker, sample, contractor="c01", at=at)
    except ConsentError as exc:
        assert exc.reason == "sample-conflict"
        return "refused"
    return "admitted"


def test_concurrent_admits_of_one_sample_never_both_succeed(
        sandbox: Sandbox, registry: ConsentRegistry) -> None:
    """Two speakers admit the same sample from two threads at once (a barrier releases them
    together), over many samples: exactly one wins each sample (the conditional claim), the
    loser is refused with ``sample-conflict`` and holds nothing in its index."""
    import threading

    day = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    racers = ("spk01", "spk05")
    regs = {s: ConsentRegistry(sandbox.session, TABLE, create=False) for s in racers}
    for n in range(12):
        sample = f"race-{n}"
        outcome: dict[str, str] = {}
        start = threading.Barrier(len(racers))

        def run(speaker: str, sample: str, start: threading.Barrier,
                outcome: dict[str, str]) -> None:
            start.wait()
            outcome[speaker] = _admit_outcome(regs[speaker], speaker, sample, day)

        threads = [threading.Thread(target=run, args=(s, sample, start, outcome))
                   for s in racers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [s for s in racers if outcome[s] == "admitted"]
        assert len(winners) == 1, (sample, outcome)
        assert registry.claimant("c01", sample) == winners[0]
        assert registry.sample_index()[("c01", sample)] == {winners[0]}
        loser = next(s for s in racers if s != winners[0])
        assert f"c01/{sample}" not in registry.get(loser).samples


def test_one_admit_makes_no_scan_whatever_the_registry_holds(
        sandbox: Sandbox, registry: ConsentRegistry) -> None:
    """The gate's cost does not grow with the table: the DynamoDB calls of one admit, counted
    with a botocore event hook on a fresh client, are GetItem and UpdateItem only (the
    consent read, the claim, the index write and the consent re-read; a refused one adds one
    GetItem naming the owner), never a Scan."""
    day = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    registry.index_samples("spk02", [f"old-{n}" for n in range(50)], contractor="c02")
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    sandbox.session.events.register("before-call.dynamodb", count)
    try:
        counted = ConsentRegistry(sandbox.session, TABLE, create=False)
        counted.admit("spk01", "s-1", contractor="c01", at=day)
        first = list(calls)
        calls.clear()
        with pytest.raises(ConsentError) as refused:
            counted.admit("spk02", "s-1", contractor="c01", at=day)
    finally:
        sandbox.session.events.unregister("before-call.dynamodb", count)
    assert refused.value.reason == "sample-conflict" and "'spk01'" in str(refused.value)
    assert first == ["GetItem", "UpdateItem", "UpdateItem", "GetItem"]
    assert calls == ["GetItem", "UpdateItem", "GetItem"]


def test_consent_withdrawn_during_admit_refuses_and_releases_the_claim(
        sandbox: Sandbox, registry: ConsentRegistry) -> None:
    """The index write names only the key and ``samples`` (so the ingest role's policy need
    not allow ``status``), and admit reads consent again after it: a withdrawal landing
    between the first check and the index write still refuses (``changed``), and the claim
    this admit made is released (the index entry stays: it only helps erasure)."""
    day = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    sent: list[dict[str, Any]] = []

    def withdraw_before_the_index_write(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append(dict(params))
        if model.name == "UpdateItem" and params.get("UpdateExpression") == "ADD samples :s":
            registry.withdraw("spk01", day.date())

    sandbox.session.events.register("provide-client-params.dynamodb.UpdateItem",
                                    withdraw_before_the_index_write)
    try:
        gated = ConsentRegistry(sandbox.session, TABLE, create=False)
        with pytest.raises(ConsentError) as refused:
            gated.admit("spk01", "s-7", contractor="c01", at=day)
    finally:
        sandbox.session.events.unregister("provide-client-params.dynamodb.UpdateItem",
                                          withdraw_before_the_index_write)
    assert refused.value.reason == "changed"
    assert registry.claimant("c01", "s-7") is None                  # released
    assert "c01/s-7" in registry.get("spk01").samples               # indexed: erasure finds it
    index_write = next(p for p in sent if p.get("UpdateExpression") == "ADD samples :s")
    assert index_write["ConditionExpression"] == "attribute_exists(speaker)"
    assert "ExpressionAttributeNames" not in index_write


def test_a_failed_admit_never_releases_a_claim_a_concurrent_admit_relies_on(
        sandbox: Sandbox, registry: ConsentRegistry) -> None:
    """F4. Admit A creates the claim on a sample; admit B (same speaker, same sample) finds
    the claim already the speaker's and completes; then consent is withdrawn, so A's re-check
    refuses and A undoes its claim. The interleaving is injected, not timed: B runs to the end,
    then the withdrawal lands, just before A's index write. A's release must not remove the
    claim B was admitted on: the sample stays the speaker's, and another speaker's admit of it
    is refused. (A claim created by a call that fails alone is still released.)"""
    day = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    other = ConsentRegistry(sandbox.session, TABLE, create=False)     # B: not hooked
    admitted: list[object] = []

    def b_then_withdraw(params: dict[str, Any], **_: Any) -> None:
        if params.get("UpdateExpression") == "ADD samples :s" and not admitted:
            admitted.append(other.admit("spk01", "s-8", contractor="c01", at=day))
            registry.withdraw("spk01", day.date())

    sandbox.session.events.register("provide-client-params.dynamodb.UpdateItem",
                                    b_then_withdraw)
    try:
        first = ConsentRegistry(sandbox.session, TABLE, create=False)  # A: hooked
        with pytest.raises(ConsentError) as refused:
            first.admit("spk01", "s-8", contractor="c01", at=day)
    finally:
        sandbox.session.events.unregister("provide-client-params.dynamodb.UpdateItem",
                                          b_then_withdraw)
    assert refused.value.reason == "changed" and len(admitted) == 1   # A refused, B admitted
    assert registry.claimant("c01", "s-8") == "spk01"                 # B's claim kept
    assert registry.sample_index()[("c01", "s-8")] == {"spk01"}
    with pytest.raises(ConsentError) as taken:
        registry.admit("spk05", "s-8", contractor="c01", at=day)
    assert taken.value.reason == "sample-conflict"


def test_claims_are_never_read_as_speakers(sandbox: Sandbox, registry: ConsentRegistry) -> None:
    """Claim items share the table: registry-wide reads leave well-formed ones out (never a
    speaker, never malformed), while an item under the reserved prefix that is not a claim is
    reported as malformed like any other bad item; a backfill claims too."""
    day = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    registry.admit("spk01", "s-1", contractor="c01", at=day)
    registry.index_samples("spk03", ["s-2", "s-3"])
    assert registry.claimant(registry.get("spk03").contractor, "s-2") == "spk03"
    records, errors = registry.scan()
    assert errors == [] and [r.speaker for r in records] == [s.speaker for s in MANIFEST.speakers]
    assert registry.known_speakers() == {s.speaker for s in MANIFEST.speakers}
    with pytest.raises(InvalidParameterError):          # another speaker's sample: refused,
        registry.index_samples("spk04", ["s-0", "s-3"], contractor=registry.get("spk03")
                               .contractor)
    assert registry.get("spk04").samples == frozenset()   # nothing indexed, s-0 released
    assert registry.claimant(registry.get("spk03").contractor, "s-0") is None
    registry.admit("spk04", "s-0", contractor=registry.get("spk03").contractor, at=day)

    sandbox.session.client("dynamodb").put_item(
        TableName=registry.table,
        Item={"speaker": {"S": "claim#c01/s-9"}, "claimant": {"S": "spk01"},
              "note": {"S": "not a claim"}})
    sandbox.session.client("dynamodb").put_item(       # a token without a claimant
        TableName=registry.table,
        Item={"speaker": {"S": "claim#c01/s-10"}, "claim_token": {"S": "t"}})
    _, errors = registry.scan()
    assert [(e.speaker, e.field) for e in errors] == [("claim#c01/s-10", "speaker"),
                                                      ("claim#c01/s-9", "speaker")]


def test_reloading_on_a_later_day_never_redates_an_existing_speaker(sandbox: Sandbox) -> None:
    """Lessons load with ``rebase_to=today``; a re-run on a later day moves every manifest date,
    but a speaker already in the registry keeps the consent it had: one whose term ended stays
    expired (only new speakers are created)."""
    first = dt.date(2030, 1, 1)
    reg = ConsentRegistry(sandbox.session, "consent-reload")
    reg.load_manifest_consents(MANIFEST, rebase_to=first)
    before = {r.speaker: r for r in reg.speakers()}
    ended = min(before.values(), key=lambda r: r.retain_until())
    later = ended.retain_until() + dt.timedelta(days=1)
    assert reg.load_manifest_consents(MANIFEST, rebase_to=later) == len(MANIFEST.speakers)
    assert {r.speaker: r for r in reg.speakers()} == before
    with pytest.raises(ConsentError) as refused:
        reg.check_consent(ended.speaker, expires_at(later))
    assert refused.value.reason == "expired"


def test_the_erasure_lease_is_one_runs_at_a_time(registry: ConsentRegistry) -> None:
    """take: only with no lease, an ended one, or one's own; a live lease of another run is
    refused (naming the speaker and its end) and left as it was; renew and release only while
    held; an unknown speaker or a bad id is refused; the record reads as before."""
    t0 = dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC)
    a, b = "a1" * 16, "b2" * 16
    before = registry.get("spk01")
    registry.take_erasure_lease("spk01", a, now=t0, until=t0 + dt.timedelta(minutes=15))
    registry.take_erasure_lease("spk01", a, now=t0, until=t0 + dt.timedelta(minutes=20))  # own
    held = (a, lease_time(t0 + dt.timedelta(minutes=20)))
    assert registry.erasure_lease("spk01") == held
    with pytest.raises(ErasureInProgressError) as refused:
        registry.take_erasure_lease("spk01", b, now=t0 + dt.timedelta(minutes=19, seconds=59),
                                    until=t0 + dt.timedelta(hours=1))
    assert refused.value.speaker == "spk01" and refused.value.lease_until == held[1]
    assert registry.erasure_lease("spk01") == held
    assert registry.get("spk01") == before and registry.scan()[1] == []
    registry.take_erasure_lease("spk01", b, now=t0 + dt.timedelta(minutes=20),
                                until=t0 + dt.timedelta(minutes=35))         # ended: taken
    with pytest.raises(ErasureInProgressError):
        registry.renew_erasure_lease("spk01", a, until=t0 + dt.timedelta(hours=2))
    assert not registry.release_erasure_lease("spk01", a)
    assert registry.erasure_lease("spk01") == (b, lease_time(t0 + dt.timedelta(minutes=35)))
    assert registry.release_erasure_lease("spk01", b) and registry.erasure_lease("spk01") is None
    with pytest.raises(UnknownSpeakerError):
        registry.take_erasure_lease("spk99", a, now=t0, until=t0 + dt.timedelta(minutes=1))
    with pytest.raises(InvalidParameterError):
        registry.take_erasure_lease("spk01", "not-a-run", now=t0, until=t0 + dt.timedelta(1))
    with pytest.raises(InvalidParameterError):
        registry.take_erasure_lease("spk01", a, now=t0, until=t0)
    assert registry.erasure_lease("spk01") is None and registry.get("spk01") == before
