"""A history of signed trails and daily digest indexes (securepipe.audit.ledger).

The Object Lock refusals asserted here are moto's own; the refusal of a verifier-only role's
``kms:Sign`` and ``s3:PutObject`` is the sandbox's emulation of IAM for STS role sessions
(moto ignores role policies); every detection is the kit's code, checked offline with the
public key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from securepipe import clock
from securepipe.access.credentials import session_with_credentials
from securepipe.audit.chain import GENESIS, AuditTrail, verify_trail
from securepipe.audit.ledger import (
    History,
    StoredObject,
    TrailLedger,
    create_verifier_role,
    default_retention,
    read_history,
    verify_bucket,
    verify_history,
)
from securepipe.audit.records import AuditRecord, canonical_json
from securepipe.encryption.signing import PublicKeyVerifier
from securepipe.errors import InvalidParameterError, SecurePipeError
from securepipe.sandbox.account import Sandbox

DAYS, PER_DAY = 3, 2


def _build(sb: Sandbox, days: int = DAYS, per_day: int = PER_DAY) -> TrailLedger:
    """Ship ``per_day`` trails a day for ``days`` days (the sandbox clock moves a day each)."""
    ledger = TrailLedger(sb.session, sb.resources.bucket("audit"), sb.resources.signing_key_arn)
    start = clock.now()
    try:
        for d in range(days):
            for t in range(per_day):
                trail = ledger.open(f"reads-{d}{t}", checkpoint_every=2)
                for i in range(3):
                    trail.append(AuditRecord(principal=f"arn:aws:iam::1:user/u{t}",
                                             action="s3:GetObject", key=f"raw/c0{i}/s{d}{t}"))
                ledger.ship(trail)
            ledger.seal()
            clock.move(dt.timedelta(days=1))
    finally:
        clock.set_to(start)
    return ledger


@pytest.fixture(scope="module")
def shipped() -> Iterator[tuple[History, PublicKeyVerifier]]:
    with Sandbox() as sb:
        _build(sb)
        verifier = PublicKeyVerifier.from_kms(sb.session, sb.resources.signing_key_arn)
        yield read_history(sb.session, sb.resources.bucket("audit")), verifier


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


def test_a_genuine_history_verifies_with_one_kms_call(sb: Sandbox) -> None:
    ledger = _build(sb, days=2)
    calls: list[str] = []
    sb.session.events.register("before-call.kms", lambda model, **_: calls.append(model.name))
    result = verify_bucket(sb.session, sb.resources.bucket("audit"),
                           sb.resources.signing_key_arn, expect_head=ledger.previous_digest)
    assert result.ok, result.breaks
    assert (result.days, result.trails, result.records) == (2, 4, 12)
    assert calls == ["GetPublicKey"]                 # one KMS call for the whole history


def test_the_audit_bucket_locks_a_plain_put_and_the_verifier_reports_it(sb: Sandbox) -> None:
    _build(sb, days=1)
    bucket = sb.resources.bucket("audit")
    assert default_retention(sb.session, bucket) == {"Mode": "COMPLIANCE", "Days": 365,
                                                     "Years": 0}
    s3 = sb.session.client("s3")
    put = s3.put_object(Bucket=bucket, Key="trails/2020-01-01/planted.jsonl", Body=b"{}\n")
    head = s3.head_object(Bucket=bucket, Key="trails/2020-01-01/planted.jsonl")
    assert head["ObjectLockMode"] == "COMPLIANCE"           # locked by default, no header given
    with pytest.raises(ClientError) as refused:             # moto's Object Lock refusal
        s3.delete_object(Bucket=bucket, Key="trails/2020-01-01/planted.jsonl",
                         VersionId=put["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    result = verify_bucket(sb.session, bucket, sb.resources.signing_key_arn)
    assert not result.ok and result.first_break is not None
    assert result.first_break.key == "trails/2020-01-01/planted.jsonl"
    assert "no signed digest lists" in result.first_break.reason


def test_a_delete_marker_hides_nothing_and_is_reported(sb: Sandbox) -> None:
    _build(sb, days=2)
    bucket = sb.resources.bucket("audit")
    s3 = sb.session.client("s3")
    key = "trails/" + clock.now().date().isoformat() + "/reads-01.jsonl"
    s3.delete_object(Bucket=bucket, Key=key)                # no VersionId: a delete marker
    assert key not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    result = verify_bucket(sb.session, bucket, sb.resources.signing_key_arn)
    assert [b.key for b in result.breaks] == [key]
    assert "delete marker" in result.breaks[0].reason
    assert result.trails == 4 and result.records == 12      # the trail under it still verified


def test_a_whole_trail_swapped_for_another_genuine_one_is_found(sb: Sandbox) -> None:
    _build(sb, days=2)
    bucket = sb.resources.bucket("audit")
    s3 = sb.session.client("s3")
    day0 = clock.now().date().isoformat()
    victim, other = f"trails/{day0}/reads-00.jsonl", f"trails/{day0}/reads-01.jsonl"
    genuine = s3.get_object(Bucket=bucket, Key=other)["Body"].read()
    s3.put_object(Bucket=bucket, Key=victim, Body=genuine)  # a newer version of the key
    lines = genuine.decode().splitlines()
    assert verify_trail(lines, PublicKeyVerifier.from_kms(sb.session,
                                                          sb.resources.signing_key_arn)).ok
    result = verify_bucket(sb.session, bucket, sb.resources.signing_key_arn)
    assert not result.ok and result.first_break is not None
    assert result.first_break.key == victim
    # the same swap in place of the listed version (as a copy of the bucket might hold it)
    history = read_history(sb.session, bucket)
    verifier = PublicKeyVerifier.from_kms(sb.session, sb.resources.signing_key_arn)
    listed = _listed(history)
    swapped = dict(history.trails)
    swapped[listed[0]] = dataclasses.replace(swapped[listed[0]], body=genuine)
    first = verify_history(dataclasses.replace(history, trails=swapped), verifier).first_break
    assert first is not None and first.key == victim


def test_a_dropped_day_is_found(shipped: tuple[History, PublicKeyVerifier]) -> None:
    history, verifier = shipped
    middle = sorted(history.digests, key=lambda d: d.key)[1]
    day = middle.key.split("/")[-2]
    dropped = History(tuple(d for d in history.digests if d is not middle),
                      {k: v for k, v in history.trails.items() if day not in k[0]})
    result = verify_history(dropped, verifier)
    assert not result.ok and result.first_break is not None
    assert "a day was dropped" in result.first_break.reason
    assert result.first_break.key > middle.key            # the next day's digest names it


def test_locked_versions_cannot_be_removed(sb: Sandbox) -> None:
    _build(sb, days=1)
    bucket = sb.resources.bucket("audit")
    s3 = sb.session.client("s3")
    for version in read_history(sb.session, bucket).digests:
        with pytest.raises(ClientError):                      # moto's Object Lock refusal
            s3.delete_object(Bucket=bucket, Key=version.key, VersionId=version.version_id)


def test_a_day_is_sealed_once_and_one_trail_is_open_at_a_time(sb: Sandbox) -> None:
    ledger = _build(sb, days=1)
    again = TrailLedger(sb.session, sb.resources.bucket("audit"), sb.resources.signing_key_arn)
    with pytest.raises(ClientError):                          # If-None-Match: * (S3's refusal)
        again.seal()                                          # digest number 1 exists
    resumed = TrailLedger.resume(sb.session, sb.resources.bucket("audit"),
                                 sb.resources.signing_key_arn)
    assert (resumed.head, resumed.previous_digest, resumed.sealed) == (
        ledger.head, ledger.previous_digest, 1)
    resumed.ship(resumed.open("same-day"))
    resumed.seal()                                            # a second seal the same day
    assert verify_bucket(sb.session, sb.resources.bucket("audit"),
                         sb.resources.signing_key_arn).ok
    trail = ledger.open("x")
    with pytest.raises(SecurePipeError):
        ledger.open("y")
    with pytest.raises(SecurePipeError):
        ledger.ship(AuditTrail(sb.session, sb.resources.signing_key_arn, "z"))
    ledger.ship(trail)
    assert json.loads(trail.lines[0])["previous"] != GENESIS


def _verifier_role(sb: Sandbox) -> Any:
    """A role with exactly the verifier's permissions, and a session of it."""
    arn = create_verifier_role(sb.session, "trail-verifier", sb.resources.bucket("audit"),
                               sb.resources.signing_key_arn,
                               trusted_arn=sb.resources.admin_user_arn)
    policy = sb.session.client("iam").get_role_policy(
        RoleName="trail-verifier", PolicyName="verify-audit-trails")["PolicyDocument"]
    assert {a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(
        st["Action"], str) else st["Action"])} == {
        "kms:GetPublicKey", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket",
        "s3:ListBucketVersions"}
    creds = sb.session.client("sts").assume_role(RoleArn=arn, RoleSessionName="auditor")[
        "Credentials"]
    return session_with_credentials(sb.session, creds["AccessKeyId"],
                                    creds["SecretAccessKey"], creds["SessionToken"])


def test_a_verifier_only_role_verifies_but_cannot_forge(sb: Sandbox) -> None:
    _build(sb, days=2)
    bucket, key_arn = sb.resources.bucket("audit"), sb.resources.signing_key_arn
    auditor = _verifier_role(sb)
    assert verify_bucket(auditor, bucket, key_arn).ok          # enough to verify everything
    with pytest.raises(ClientError) as refused:                 # emulated IAM: no kms:Sign
        AuditTrail(auditor, key_arn, "forged")
    assert refused.value.response["Error"]["Code"].startswith("AccessDenied")
    with pytest.raises(ClientError):                            # nor CreateKey, nor PutObject
        auditor.client("kms").create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")
    with pytest.raises(ClientError):
        auditor.client("s3").put_object(Bucket=bucket, Key="trails/x.jsonl", Body=b"x")
    # Its best forgery: a shorter history it signs with a key of its own, offline, with the
    # pinned key's ARN in every header and digest; planted by whoever can write (the admin).
    history = read_history(auditor, bucket)
    forged = _resign(history, ec.generate_private_key(ec.SECP256R1()), key_arn)
    admin = sb.session.client("s3")
    for obj in forged.digests:
        admin.put_object(Bucket=bucket, Key=obj.key, Body=obj.body)
    for obj in forged.trails.values():
        admin.put_object(Bucket=bucket, Key=obj.key, Body=obj.body)
    verifier = PublicKeyVerifier.from_kms(auditor, key_arn)
    alone = verify_history(forged, verifier)
    assert not alone.ok and (alone.days, alone.trails) == (0, 0)     # no digest, no trail counts
    assert {b.reason.split(" ")[1] for b in alone.breaks if b.key.startswith("digests/")} == {
        "signature"}
    for obj in forged.trails.values():
        assert verify_trail(_lines(obj), verifier).index == 0           # header signature
    result = verify_bucket(auditor, bucket, key_arn)
    assert not result.ok and len(result.breaks) == len(forged.digests) + len(forged.trails)
    assert (result.trails, result.records) == (4, 12)          # the genuine history is intact


def _resign(history: History, private: ec.EllipticCurvePrivateKey, key_arn: str) -> History:
    """Rebuild ``history`` minus one record per trail, signed with ``private`` (not KMS)."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import hashes

    from securepipe.audit.chain import signed_message
    from securepipe.audit.ledger import digest_message

    def sign(message: bytes) -> str:
        digest = hashlib.sha256(message).digest()      # the kit signs SHA-256(message) as RAW
        return base64.b64encode(private.sign(digest, ec.ECDSA(hashes.SHA256()))).decode()

    trails: dict[tuple[str, str], StoredObject] = {}
    head = GENESIS
    digests, previous = [], GENESIS
    for d in sorted(history.digests, key=lambda o: o.key):
        data = json.loads(d.body or b"")
        entries = []
        for entry in data["trails"]:
            old = [json.loads(x) for x in history.trails[(entry["key"], entry["version_id"])]
                   .body.decode().splitlines()]                                  # type: ignore[union-attr]
            kept = [o for o in old if o["type"] == "record"][1:]
            lines: list[str] = []

            def emit(obj: dict[str, Any], signed: bool, out: list[str] = lines) -> None:
                obj = {**obj, "seq": len(out),
                       "prev": hashlib.sha256(out[-1].encode()).hexdigest() if out else GENESIS}
                out.append(canonical_json({**obj, "sig": sign(signed_message(obj))} if signed
                                          else obj))

            emit({k: v for k, v in old[0].items() if k != "sig"} | {"previous": head}, True)
            for rec in kept:
                emit({k: v for k, v in rec.items() if k not in ("seq", "prev")}, False)
            emit({"type": "checkpoint", "trail": entry["name"], "records": len(kept),
                  "final": True, "time": old[-1]["time"]}, True)
            body = ("\n".join(lines) + "\n").encode()
            head = hashlib.sha256(lines[-1].encode()).hexdigest()
            trails[(entry["key"], "forged")] = StoredObject(entry["key"], "forged", body)
            entries.append({**entry, "version_id": "forged", "head": head,
                            "sha256": hashlib.sha256(body).hexdigest(),
                            "records": len(kept)})
        unsigned = {k: v for k, v in data.items() if k != "sig"} | {
            "trails": entries, "previous": previous, "key_arn": key_arn}
        body = (canonical_json({**unsigned, "sig": sign(digest_message(unsigned))}) + "\n"
                ).encode()
        previous = hashlib.sha256(body).hexdigest()
        digests.append(StoredObject(d.key, "forged", body))
    return History(tuple(digests), trails)


# -- arbitrary mutations of a shipped set, offline -----------------------------------------------


def _listed(history: History) -> list[tuple[str, str]]:
    out = []
    for d in sorted(history.digests, key=lambda o: o.key):
        for e in json.loads(d.body or b"")["trails"]:
            out.append((e["key"], e["version_id"]))
    return out


def _lines(obj: StoredObject) -> list[str]:
    return (obj.body or b"").decode().splitlines()


def _with_trail(history: History, slot: tuple[str, str], lines: list[str] | None) -> History:
    trails = dict(history.trails)
    if lines is None:
        del trails[slot]
    else:
        trails[slot] = dataclasses.replace(trails[slot],
                                           body=("\n".join(lines) + "\n").encode())
    return dataclasses.replace(history, trails=trails)


@st.composite
def mutations(draw: st.DrawFn, history: History) -> tuple[History, str, set[int] | None]:
    """A mutated history, the key where the first break must be, and the acceptable lines."""
    listed = _listed(history)
    digests = sorted(history.digests, key=lambda o: o.key)
    kind = draw(st.sampled_from(["edit-line", "delete-line", "insert-line", "swap-lines",
                                 "truncate", "drop-trail", "swap-trails", "edit-digest",
                                 "drop-digest", "swap-digests", "truncate-digest"]))
    if kind in ("edit-line", "delete-line", "insert-line", "swap-lines", "truncate"):
        slot = draw(st.sampled_from(listed))
        lines = _lines(history.trails[slot])
        n = len(lines)
        if kind == "edit-line":
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(0, len(lines[i]) - 1))
            c = draw(st.characters(min_codepoint=32, max_codepoint=126))
            assume(lines[i][j] != c)
            lines[i] = lines[i][:j] + c + lines[i][j + 1:]
            where = {i}
        elif kind == "delete-line":
            i = draw(st.integers(0, n - 1))
            del lines[i]
            where = {i}
        elif kind == "insert-line":
            i = draw(st.integers(0, n))
            src = draw(st.sampled_from(sorted({ln for s in listed
                                               for ln in _lines(history.trails[s])})))
            lines.insert(i, src)
            assume(lines != _lines(history.trails[slot]))
            # a copy of the line it lands before: inserting it here or after it is the same
            where = {i, i + 1} if i + 1 < len(lines) and lines[i + 1] == src else {i}
        elif kind == "swap-lines":
            i = draw(st.integers(0, n - 2))
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
            where = {i}
        else:
            keep = draw(st.integers(0, n - 1))
            lines = lines[:keep]
            where = {keep}
        return _with_trail(history, slot, lines), slot[0], where
    if kind == "drop-trail":
        slot = draw(st.sampled_from(listed))
        return _with_trail(history, slot, None), slot[0], None
    if kind == "swap-trails":
        a, b = sorted(draw(st.lists(st.sampled_from(listed), min_size=2, max_size=2,
                                    unique=True)), key=listed.index)
        mutated = _with_trail(history, a, _lines(history.trails[b]))
        return _with_trail(mutated, b, _lines(history.trails[a])), a[0], None
    i = draw(st.integers(0, len(digests) - 1))
    body = digests[i].body or b""
    if kind == "edit-digest":
        j = draw(st.integers(0, len(body) - 2))
        c = draw(st.integers(32, 126))
        assume(body[j] != c)
        new = body[:j] + bytes([c]) + body[j + 1:]
    elif kind == "truncate-digest":
        new = body[:draw(st.integers(0, len(body) - 2))]
    elif kind == "swap-digests":
        k = draw(st.integers(0, len(digests) - 1))
        assume(k != i)
        i, k = min(i, k), max(i, k)
        swapped = list(digests)
        swapped[i] = dataclasses.replace(digests[i], body=digests[k].body)
        swapped[k] = dataclasses.replace(digests[k], body=digests[i].body)
        return dataclasses.replace(history, digests=tuple(swapped)), digests[i].key, None
    else:  # drop-digest: its day's trails are no longer listed; they are the first break
        day = digests[i].key.split("/")[-2]
        first = min(s[0] for s in listed if day in s[0])
        return (dataclasses.replace(history, digests=tuple(d for d in digests if d is not
                                                           digests[i])), first, None)
    changed = list(digests)
    changed[i] = dataclasses.replace(digests[i], body=new)
    return dataclasses.replace(history, digests=tuple(changed)), digests[i].key, None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_mutation_is_detected_and_located(shipped: tuple[History, PublicKeyVerifier],
                                                data: st.DataObject) -> None:
    history, verifier = shipped
    assert verify_history(history, verifier).ok
    mutated, key, lines = data.draw(mutations(history))
    result = verify_history(mutated, verifier)
    first = result.first_break
    assert first is not None, "mutation not detected"
    assert first.key == key, (str(first), key)
    if lines is not None:
        assert first.line in lines, (str(first), lines)


def test_hostile_nesting_is_a_located_break_not_a_crash(sb: Sandbox) -> None:
    """An object planted with JSON nested deeper than the parser's stack is reported, and the
    rest of the history is still verified (attacker finding: RecursionError stopped it)."""
    _build(sb, days=1)
    bucket = sb.resources.bucket("audit")
    bomb = ("[" * 100_000 + "]" * 100_000).encode()
    s3 = sb.session.client("s3")
    for key in ("trails/2020-01-01/bomb.jsonl", "digests/2020-01-01/000099.json"):
        s3.put_object(Bucket=bucket, Key=key, Body=bomb)
    result = verify_bucket(sb.session, bucket, sb.resources.signing_key_arn)
    assert not result.ok
    found = {b.key for b in result.breaks}
    assert {"trails/2020-01-01/bomb.jsonl", "digests/2020-01-01/000099.json"} <= found
    assert result.trails >= PER_DAY                      # the genuine trails were still checked
    assert not verify_trail([bomb.decode()], _verifier_of(sb)).ok


def _verifier_of(sb: Sandbox) -> PublicKeyVerifier:
    return PublicKeyVerifier.from_kms(sb.session, sb.resources.signing_key_arn)


def test_legacy_trails_verify_only_under_a_pinned_key(sb: Sandbox) -> None:
    """A format-1 trail HMAC'd under a data key of the forger's own KMS key is a break, not a
    weaker pass (attacker finding: legacy verification followed the header's key)."""
    import base64
    import hashlib
    import hmac

    _build(sb, days=1)
    bucket = sb.resources.bucket("audit")
    kms = sb.session.client("kms")
    rogue = kms.create_key(Description="forger's own key")["KeyMetadata"]["Arn"]
    name = "forged-legacy"
    context = {"securepipe:trail": name, "securepipe:use": "audit-trail-hmac"}
    dk = kms.generate_data_key(KeyId=rogue, KeySpec="AES_256", EncryptionContext=context)
    header = {"type": "header", "trail": name, "seq": 0, "prev": "0" * 64, "version": 1,
              "created": "2026-01-01T00:00:00.000Z", "key_arn": rogue,
              "data_key": base64.b64encode(dk["CiphertextBlob"]).decode(), "context": context,
              "checkpoint_every": 100}

    def mac(body: dict[str, object]) -> str:
        return hmac.new(dk["Plaintext"], canonical_json(body).encode(), hashlib.sha256).hexdigest()

    lines = [canonical_json({**header, "mac": mac(header)})]
    seal = {"type": "checkpoint", "trail": name, "seq": 1,
            "prev": hashlib.sha256(lines[0].encode()).hexdigest(), "records": 0, "final": True,
            "time": "2026-01-01T00:00:00.000Z"}
    lines.append(canonical_json({**seal, "mac": mac(seal)}))
    key = "trails/2026-01-01/forged-legacy.jsonl"
    sb.session.client("s3").put_object(Bucket=bucket, Key=key,
                                       Body=("\n".join(lines) + "\n").encode())
    result = verify_bucket(sb.session, bucket, sb.resources.signing_key_arn, legacy=True,
                           legacy_key_arns=[sb.resources.kms_key_arn])
    assert not result.ok and key in {b.key for b in result.breaks}
    assert result.legacy == ()
    with pytest.raises(InvalidParameterError):
        verify_bucket(sb.session, bucket, sb.resources.signing_key_arn, legacy=True)
