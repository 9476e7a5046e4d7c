"""Step 5: per-speaker keys (KMS-wrapped, raw AES wrapping in the Encryption SDK), shredding."""

from __future__ import annotations

import datetime as dt
import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header
from speaker_world import CONSENT_DAY, World, make_world

from securepipe import clock
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.errors import (
    ConsentError,
    DecryptionError,
    EncryptionError,
    InvalidParameterError,
    UnknownSpeakerError,
)
from securepipe.retention.shredding import (
    PROVIDER_ID,
    SpeakerKeyConfig,
    shred_speaker_key,
    speaker_key_context,
)

CTX1 = SampleContext("c01", "spk01_u1", "speech-features")
CTX2 = SampleContext("c02", "spk02_u1", "speech-features")


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world()


def test_round_trip_and_exact_context(world: World, tmp_path: Path) -> None:
    world.keys.ensure("spk01")
    env = world.keys.envelope("spk01")
    message = env.encrypt_bytes(b"mel" * 1000, CTX1)
    assert env.decrypt_bytes(message, CTX1) == b"mel" * 1000
    for wrong in (SampleContext("c02", "spk01_u1", "speech-features"),
                  SampleContext("c01", "spk01_u2", "speech-features"),
                  SampleContext("c01", "spk01_u1", "legal-archive")):
        with pytest.raises(DecryptionError):
            env.decrypt_bytes(message, wrong)
    src, enc, out = tmp_path / "a.wav", tmp_path / "a.enc", tmp_path / "b.wav"
    src.write_bytes(b"RIFF" + bytes(range(256)) * 300)
    result = env.encrypt_file(src, enc, CTX1)
    env.decrypt_file(enc, out, CTX1)
    assert out.read_bytes() == src.read_bytes()
    assert result.kms_calls == 1 and env.kms_calls["Decrypt"] >= 3  # one unwrap per operation


def test_each_message_is_wrapped_only_by_the_speaker_key(world: World) -> None:
    key_id = world.keys.ensure("spk01")
    message = world.keys.envelope("spk01").encrypt_bytes(b"x", CTX1)
    header, _ = deserialize_header(io.BytesIO(message))
    [edk] = header.encrypted_data_keys
    assert edk.key_provider.provider_id == PROVIDER_ID
    assert edk.key_provider.key_info.startswith(key_id.encode())
    assert b"spk01" not in edk.key_provider.key_info          # the header never names the speaker
    shared = Envelope(world.sb.session, EnvelopeConfig(key_arns=world.sb.resources.kms_key_arn))
    with pytest.raises(DecryptionError):                        # the shared KMS key cannot open it
        shared.decrypt_bytes(message, CTX1)


def test_only_the_wrapped_key_is_stored(world: World) -> None:
    world.keys.ensure("spk01")
    wrapped, status = world.registry.wrapped_key("spk01")
    assert wrapped is not None and status == "active"
    kms = world.sb.session.client("kms")
    plaintext = kms.decrypt(CiphertextBlob=wrapped.blob,
                            EncryptionContext=speaker_key_context("spk01"))["Plaintext"]
    assert len(plaintext) == 32
    ddb = world.sb.session.client("dynamodb")
    item = ddb.get_item(TableName=world.registry.table, Key={"speaker": {"S": "spk01"}})["Item"]
    key_item = ddb.get_item(TableName=world.registry.table,
                            Key={"speaker": {"S": "key#spk01"}})["Item"]
    assert "wrapped_key" not in item                            # its own item, not consent's
    assert set(key_item) == {"speaker", "wrapped_key", "key_id", "key_arn", "key_created_at"}
    assert key_item["wrapped_key"]["B"] == wrapped.blob
    for stored in (item, key_item):
        assert plaintext not in repr(stored).encode() and plaintext not in wrapped.blob
    assert world.keys.ensure("spk01") == wrapped.key_id         # idempotent


def test_another_speaker_cannot_decrypt_nor_borrow_a_key(world: World) -> None:
    for speaker in ("spk01", "spk02"):
        world.keys.ensure(speaker)
    message = world.keys.envelope("spk01").encrypt_bytes(b"x", CTX1)
    with pytest.raises(DecryptionError):
        world.keys.envelope("spk02").decrypt_bytes(message, CTX1)
    # Copy spk01's wrapped key into spk02's key item: KMS refuses it under spk02's context.
    spk01, _ = world.registry.wrapped_key("spk01")
    assert spk01 is not None
    world.sb.session.client("dynamodb").update_item(
        TableName=world.registry.table, Key={"speaker": {"S": "key#spk02"}},
        UpdateExpression="SET wrapped_key = :b, key_id = :k",
        ExpressionAttributeValues={":b": {"B": spk01.blob}, ":k": {"S": spk01.key_id}})
    borrowed, _ = world.registry.wrapped_key("spk02")
    assert borrowed is not None and borrowed.blob == spk01.blob
    with pytest.raises(DecryptionError):
        world.keys.envelope("spk02").decrypt_bytes(message, CTX1)


def test_shredding_makes_every_earlier_copy_undecryptable(world: World, tmp_path: Path) -> None:
    for speaker in ("spk01", "spk02"):
        world.keys.ensure(speaker)
    env1, env2 = world.keys.envelope("spk01"), world.keys.envelope("spk02")
    copy = env1.encrypt_bytes(b"features of spk01", CTX1)          # a copy taken a year ago
    src, enc = tmp_path / "a.wav", tmp_path / "a.enc"
    src.write_bytes(b"RIFF....")
    env1.encrypt_file(src, enc, CTX1)
    other = env2.encrypt_bytes(b"features of spk02", CTX2)

    evidence = shred_speaker_key(world.registry, "spk01",
                                 when=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert evidence.shredded and not evidence.registry_has_key_after
    assert evidence.wrapped_key_sha256 and len(evidence.wrapped_key_sha256) == 64
    assert "point-in-time recovery" in evidence.backups
    record = world.registry.get("spk01")
    assert record.status == "erased" and record.erased_at == dt.datetime(2027, 1, 1,
                                                                         tzinfo=dt.UTC)

    for envelope in (env1, world.keys.envelope("spk01")):         # old object, or a fresh one
        with pytest.raises(DecryptionError):
            envelope.decrypt_bytes(copy, CTX1)
        with pytest.raises(DecryptionError):
            envelope.decrypt_file(enc, tmp_path / "out.wav", CTX1)
    assert not (tmp_path / "out.wav").exists()
    with pytest.raises(EncryptionError):
        env1.encrypt_bytes(b"new", CTX1)
    with pytest.raises(ConsentError):
        world.keys.ensure("spk01")                                  # no resurrection
    assert env2.decrypt_bytes(other, CTX2) == b"features of spk02"  # others unaffected
    again = world.keys.shred("spk01")                               # idempotent
    assert not again.shredded and "already" in again.note


def test_consent_status_gates_new_key_material(world: World) -> None:
    world.keys.ensure("spk02")
    message = world.keys.envelope("spk02").encrypt_bytes(b"x", CTX2)
    world.registry.withdraw("spk01", dt.date(2026, 6, 1))
    world.registry.withdraw("spk02", dt.date(2026, 6, 1))
    for speaker in ("spk01", "spk02"):           # withdrawn, with or without a key: refused
        with pytest.raises(ConsentError) as refused:
            world.keys.ensure(speaker)
        assert refused.value.reason == "withdrawn"
    with pytest.raises(EncryptionError):         # the envelope refuses too, not only ensure
        world.keys.envelope("spk02").encrypt_bytes(b"y", CTX2)
    assert world.keys.envelope("spk02").decrypt_bytes(message, CTX2) == b"x"   # still readable
    with pytest.raises(ConsentError) as expired:  # consent term over, status still "active"
        world.keys.ensure("spk09", clock=lambda: dt.datetime(2027, 1, 2, tzinfo=dt.UTC))
    assert expired.value.reason == "expired"
    world.keys.ensure("spk09")                   # key material exists, then the term ends:
    ctx9 = SampleContext("c09", "spk09_u1", "speech-features")
    old = world.keys.envelope("spk09").encrypt_bytes(b"x", ctx9)
    clock.set_to(dt.datetime(2027, 1, 2, tzinfo=dt.UTC))
    with pytest.raises(EncryptionError, match="retention ended"):     # the envelope refuses
        world.keys.envelope("spk09").encrypt_bytes(b"y", ctx9)
    assert world.keys.envelope("spk09").decrypt_bytes(old, ctx9) == b"x"   # reading goes on
    clock.set_to(CONSENT_DAY)
    world.registry.begin_erasure("spk02", dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
    with pytest.raises(EncryptionError):         # an erasure under way: nothing new encrypted
        world.keys.envelope("spk02").encrypt_bytes(b"y", CTX2)
    assert world.keys.envelope("spk02").decrypt_bytes(message, CTX2) == b"x"


def test_bad_input(world: World) -> None:
    with pytest.raises(ConsentError) as unknown:
        world.keys.ensure("spk42")
    assert unknown.value.reason == "unknown"
    with pytest.raises(UnknownSpeakerError):
        shred_speaker_key(world.registry, "spk42")
    with pytest.raises(DecryptionError):
        world.keys.envelope("spk42").decrypt_bytes(b"\x02garbage", CTX1)
    with pytest.raises(EncryptionError):
        world.keys.envelope("spk03").encrypt_bytes(b"x", CTX1)   # never created a key
    for hostile in ["spk/01", "*", "", "spk01\x00"]:
        with pytest.raises(InvalidParameterError):
            world.keys.envelope(hostile)
        with pytest.raises(InvalidParameterError):
            world.keys.ensure(hostile)
    with pytest.raises(InvalidParameterError):
        SpeakerKeyConfig("t", "alias/securepipe-data")
    config = SpeakerKeyConfig("t", world.sb.resources.kms_key_arn)
    assert pickle.loads(pickle.dumps(config)) == config             # process pools can ship it


# -- key items: bookkeeping, exact shredding, keys kept where earlier releases kept them ------

def _legacy(world: World, speaker: str) -> bytes:
    """Put the speaker's key where releases before key items kept it: in their own item."""
    ddb, table = world.sb.session.client("dynamodb"), world.registry.table
    key = ddb.get_item(TableName=table, Key={"speaker": {"S": f"key#{speaker}"}})["Item"]
    ddb.delete_item(TableName=table, Key={"speaker": {"S": f"key#{speaker}"}})
    ddb.update_item(TableName=table, Key={"speaker": {"S": speaker}},
                    UpdateExpression="SET wrapped_key = :b, key_id = :k, key_arn = :a",
                    ExpressionAttributeValues={":b": key["wrapped_key"], ":k": key["key_id"],
                                               ":a": key["key_arn"]})
    return bytes(key["wrapped_key"]["B"])


def test_key_items_are_bookkeeping_not_speakers(world: World) -> None:
    """Registry-wide reads leave well-formed key items out (a speaker's key shows as their
    has_key), and report a malformed one like any malformed item."""
    for speaker in ("spk01", "spk02"):
        world.keys.ensure(speaker)
    records, errors = world.registry.scan()
    assert not errors and not any("#" in r.speaker for r in records)
    by_speaker = {r.speaker: r for r in records}
    assert by_speaker["spk01"].has_key and not by_speaker["spk03"].has_key
    assert by_speaker["spk01"].key_id == world.keys.ensure("spk01")
    assert not any("#" in s for s in world.registry.known_speakers())
    assert not any("#" in s for owners in world.registry.sample_index().values() for s in owners)
    world.sb.session.client("dynamodb").put_item(
        TableName=world.registry.table,
        Item={"speaker": {"S": "key#spk03"}, "status": {"S": "active"}})
    _, errors = world.registry.scan()
    assert [e.speaker for e in errors] == ["key#spk03"]


def test_shredding_deletes_exactly_the_key_it_read_and_retries_when_it_changes(
        world: World) -> None:
    """A key replaced between shredding's read and its transaction fails the Delete's
    condition; shredding reads again and deletes (and fingerprints) the key that is there. A
    key that keeps changing: ErasureError after KEY_WRITE_ATTEMPTS, nothing half-done."""
    import hashlib

    from securepipe.errors import ErasureError
    from securepipe.retention.consent import KEY_WRITE_ATTEMPTS, ConsentRegistry

    for speaker in ("spk01", "spk02"):
        world.keys.ensure(speaker)
    ddb, table = world.sb.session.client("dynamodb"), world.registry.table
    calls: list[int] = []
    replacements = [b"replaced-" + bytes([n]) * 40 for n in range(KEY_WRITE_ATTEMPTS + 1)]

    def replace_key(speaker: str, limit: int) -> Any:
        def handler(**_: Any) -> None:
            if len(calls) < limit:
                ddb.update_item(TableName=table, Key={"speaker": {"S": f"key#{speaker}"}},
                                UpdateExpression="SET wrapped_key = :b",
                                ExpressionAttributeValues={":b": {"B": replacements[len(calls)]}})
            calls.append(1)
        return handler

    session = world.sb.session
    handler = replace_key("spk01", 1)
    session.events.register("before-call.dynamodb.TransactWriteItems", handler)
    try:
        registry = ConsentRegistry(session, table, create=False)
        evidence = shred_speaker_key(registry, "spk01")
    finally:
        session.events.unregister("before-call.dynamodb.TransactWriteItems", handler)
    assert len(calls) == 2                                 # one retry
    assert evidence.shredded and evidence.wrapped_key_sha256 == hashlib.sha256(
        replacements[0]).hexdigest()
    assert not world.registry.get("spk01").has_key
    assert world.registry.get("spk01").status == "erased"

    calls.clear()
    handler = replace_key("spk02", 10**6)
    session.events.register("before-call.dynamodb.TransactWriteItems", handler)
    try:
        registry = ConsentRegistry(session, table, create=False)
        with pytest.raises(ErasureError, match="kept changing"):
            shred_speaker_key(registry, "spk02")
    finally:
        session.events.unregister("before-call.dynamodb.TransactWriteItems", handler)
    assert len(calls) == KEY_WRITE_ATTEMPTS
    after = world.registry.get("spk02")
    assert after.has_key and after.status == "active" and after.erased_at is None


def test_a_key_kept_in_the_speakers_own_item_is_never_orphaned(world: World) -> None:
    """A key where earlier releases kept it (the speaker's own item): ensure refuses to make a
    second one (the store's ConditionCheck), shredding removes it, and
    migrate_wrapped_keys moves it into a key item atomically, after which it decrypts again."""
    import hashlib

    world.keys.ensure("spk01")
    message = world.keys.envelope("spk01").encrypt_bytes(b"old", CTX1)
    _legacy(world, "spk01")
    assert world.registry.get("spk01").has_key
    with pytest.raises(EncryptionError, match="migrate_wrapped_keys"):
        world.keys.ensure("spk01")
    assert world.registry.migrate_wrapped_keys() == ["spk01"]
    assert world.registry.migrate_wrapped_keys() == []            # idempotent
    item = world.sb.session.client("dynamodb").get_item(
        TableName=world.registry.table, Key={"speaker": {"S": "spk01"}})["Item"]
    assert "wrapped_key" not in item
    assert world.keys.envelope("spk01").decrypt_bytes(message, CTX1) == b"old"

    world.keys.ensure("spk02")
    blob = _legacy(world, "spk02")
    evidence = shred_speaker_key(world.registry, "spk02")
    assert evidence.shredded and not evidence.registry_has_key_after
    assert evidence.wrapped_key_sha256 == hashlib.sha256(blob).hexdigest()
    assert not world.registry.get("spk02").has_key
