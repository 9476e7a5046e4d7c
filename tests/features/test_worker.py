"""The event-driven worker: S3 ObjectCreated -> SQS -> ingest, dead letters, heartbeat, stop,
and two worker processes against the server-mode sandbox."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securepipe import clock
from securepipe.data.dataset import load_manifest
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.hardening import apply_bucket_hardening, sse_kms_put_args
from securepipe.encryption.upload import upload_sample
from securepipe.features.audio import malformed_examples
from securepipe.features.ingest import IngestConfig, IngestItem
from securepipe.features.worker import (
    IngestQueues,
    PoisonMessage,
    WorkerSettings,
    dead_letters,
    ingest_worker,
    parse_event,
    setup_notifications,
)
from securepipe.retention.consent import ConsentRegistry
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
MANIFEST = load_manifest()
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    sb: Sandbox
    config: IngestConfig
    queues: IngestQueues
    envelope: Envelope

    registry: ConsentRegistry

    def upload(self, contractor: str, sample_id: str, data: bytes, tmp: Path,
               speaker: str = "spk01") -> None:
        """Upload as the kit does: naming the speaker, past the consent gate (issue 14)."""
        path = tmp / f"{contractor}-{sample_id}.wav"
        path.write_bytes(data)
        upload_sample(self.sb.session, self.envelope, path, bucket=self.config.raw_bucket,
                      key_arn=self.config.key_arn,
                      context=SampleContext(contractor, sample_id, self.config.upload_purpose),
                      speaker=speaker, consent=self.registry)

    def settings(self, **kwargs: object) -> WorkerSettings:
        base: dict[str, object] = dict(queue_url=self.queues.queue_url,
                                       dead_letter_url=self.queues.dead_letter_url,
                                       concurrency=4, max_receives=2, visibility_timeout_s=30,
                                       wait_s=1, retry_delay_s=0, idle_exit_s=2.0)
        base.update(kwargs)
        return WorkerSettings(**base)  # type: ignore[arg-type]

    def queue_depth(self) -> int:
        attrs = self.sb.client("sqs").get_queue_attributes(
            QueueUrl=self.queues.queue_url,
            AttributeNames=["ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(v) for v in attrs.values())

    def feature_versions(self, contractor: str, sample_id: str) -> int:
        item = IngestItem(contractor, sample_id)
        out = self.sb.client("s3").list_object_versions(
            Bucket=self.config.features_bucket, Prefix=self.config.features_key(item))
        return len(out.get("Versions", []))

    def raw_versions(self, key: str) -> int:
        out = self.sb.client("s3").list_object_versions(Bucket=self.config.raw_bucket,
                                                        Prefix=key)
        return len(out.get("Versions", [])) + len(out.get("DeleteMarkers", []))


def _stage(sb: Sandbox) -> Stage:
    res = sb.resources
    for role, key in (("raw", res.kms_key_arn), ("features", res.kms_key_arn),
                      ("archive", res.archive_key_arn)):
        apply_bucket_hardening(sb.session, res.bucket(role), key)
    config = IngestConfig(raw_bucket=res.bucket("raw"), features_bucket=res.bucket("features"),
                          archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                          archive_key_arn=res.archive_key_arn)
    queues = setup_notifications(sb.session, config.raw_bucket, max_receives=2,
                                 visibility_timeout_s=30)
    registry = ConsentRegistry(sb.session)
    registry.load_manifest_consents(MANIFEST, rebase_to=clock.now().date())
    return Stage(sb, config, queues, Envelope(sb.session, EnvelopeConfig(key_arns=res.kms_key_arn)),
                 registry)


@pytest.fixture
def stage() -> Iterator[Stage]:
    with Sandbox() as sb:
        yield _stage(sb)


GOOD = [(u.contractor, u.sample_id) for u in MANIFEST.utterances[:4]]


def _upload_mix(stage: Stage, tmp: Path) -> None:
    """Four good uploads, a malformed one, a poison upload and an object at a foreign key."""
    for contractor, sample_id in GOOD:
        stage.upload(contractor, sample_id, MANIFEST.path_of(sample_id).read_bytes(), tmp,
                     speaker=MANIFEST.utterance(sample_id).speaker)
    broken = malformed_examples(MANIFEST.path_of("spk01_u1").read_bytes())[-1]
    stage.upload("c05", "broken", broken.data, tmp)
    # poison: its current version is a delete marker, so ingest refuses it on every receive
    stage.upload("c05", "erased", MANIFEST.path_of("spk01_u1").read_bytes(), tmp)
    stage.sb.client("s3").delete_object(Bucket=stage.config.raw_bucket, Key="raw/c05/erased")
    stage.sb.client("s3").put_object(Bucket=stage.config.raw_bucket, Key="raw/c05/deep/er",
                                     Body=b"x", **sse_kms_put_args(stage.config.key_arn))


def _check_mix(stage: Stage) -> None:
    for contractor, sample_id in GOOD:
        assert stage.feature_versions(contractor, sample_id) == 1
        assert stage.raw_versions(f"raw/{contractor}/{sample_id}") == 0
    assert stage.raw_versions("raw/c05/broken") == 0
    head = stage.sb.client("s3").head_object(Bucket=stage.config.raw_bucket,
                                             Key="quarantine/c05/broken")
    assert head["Metadata"]["securepipe-quarantine-reason"] == "not-speech"
    assert stage.queue_depth() == 0
    # the event's key is URL-encoded (moto also encodes the slashes)
    letters = {unquote_plus(json.loads(d["body"])["Records"][0]["s3"]["object"]["key"]):
               d["reason"]
               for d in dead_letters(stage.sb.session, stage.queues.dead_letter_url)}
    assert set(letters) == {"raw/c05/erased", "raw/c05/deep/er"}
    assert "delete marker" in letters["raw/c05/erased"]
    assert letters["raw/c05/deep/er"] == "bad-key"
    assert stage.raw_versions("raw/c05/erased") == 2   # nothing of the poison was deleted


def test_uploads_flow_through_the_queue_to_features_quarantine_or_dead_letters(
        stage: Stage, tmp_path: Path) -> None:
    _upload_mix(stage, tmp_path)
    deletes: list[int] = []   # entries per DeleteMessageBatch, DeleteMessage as 1

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("DeleteMessage", "DeleteMessageBatch"):
            deletes.append(len(params.get("Entries", [None])))

    stage.sb.session.events.register("provide-client-params.sqs", count)
    try:
        report = ingest_worker(stage.config, stage.settings(), lambda: stage.sb.session)
    finally:
        stage.sb.session.events.unregister("provide-client-params.sqs", count)
    _check_mix(stage)
    assert report.dead_lettered == 2 and report.retried == 1   # erased: 2 receives, bad key: 1
    assert report.count("processed") == 4 and report.count("quarantined") == 1
    assert report.stopped_by == "idle"
    # six finished messages (five samples and S3's test event) are deleted in batches; each
    # dead letter's original is deleted on its own
    assert report.deleted == 6 and sum(deletes) == 6 + 2 and len(deletes) < 6 + 2


def test_duplicate_and_out_of_order_deliveries_are_harmless(stage: Stage, tmp_path: Path) -> None:
    contractor, sample_id = GOOD[0]
    data = MANIFEST.path_of(sample_id).read_bytes()
    stage.upload(contractor, sample_id, data, tmp_path)
    stage.upload(contractor, sample_id, MANIFEST.path_of(GOOD[1][1]).read_bytes(), tmp_path)
    sqs = stage.sb.client("sqs")
    events = sqs.receive_message(QueueUrl=stage.queues.queue_url, MaxNumberOfMessages=10,
                                 VisibilityTimeout=0)["Messages"]
    bodies = [m["Body"] for m in events if "Records" in m["Body"]]
    assert len(bodies) == 2
    for body in reversed(bodies):   # out of order, and every event delivered twice
        sqs.send_message(QueueUrl=stage.queues.queue_url, MessageBody=body)
    report = ingest_worker(stage.config, stage.settings(concurrency=6),
                           lambda: stage.sb.session)
    assert report.count("failed") == 0 and report.dead_lettered == 0
    assert stage.feature_versions(contractor, sample_id) == 1
    assert stage.raw_versions(f"raw/{contractor}/{sample_id}") == 0
    assert stage.queue_depth() == 0


def test_a_slow_sample_keeps_its_message_hidden(stage: Stage, tmp_path: Path) -> None:
    contractor, sample_id = GOOD[0]
    stage.upload(contractor, sample_id, MANIFEST.path_of(sample_id).read_bytes(), tmp_path)

    def slow(c: str, s: str) -> IngestItem:
        time.sleep(4.5)   # longer than the visibility timeout below
        return IngestItem(c, s)

    report = ingest_worker(stage.config, stage.settings(visibility_timeout_s=3, concurrency=2),
                           lambda: stage.sb.session, item_for=slow)
    # without the heartbeat the message reappears after 3 s and is received a second time
    assert report.messages == 2   # S3's test event and the upload, each once
    assert report.count("processed") == 1 and stage.queue_depth() == 0


def test_short_polls_wait_for_in_flight_work_instead_of_spinning(stage: Stage,
                                                                tmp_path: Path) -> None:
    contractor, sample_id = GOOD[0]
    stage.upload(contractor, sample_id, MANIFEST.path_of(sample_id).read_bytes(), tmp_path)
    receives = []
    stage.sb.session.events.register("before-call.sqs.ReceiveMessage",
                                     lambda **kw: receives.append(1))

    def slow(c: str, s: str) -> IngestItem:
        time.sleep(2.0)
        return IngestItem(c, s)

    started = time.monotonic()
    report = ingest_worker(stage.config, stage.settings(wait_s=0, idle_exit_s=0),
                           lambda: stage.sb.session, item_for=slow)
    elapsed = time.monotonic() - started
    assert report.count("processed") == 1 and stage.queue_depth() == 0
    # about one receive per half second of waiting, not a busy loop of empty short polls
    assert len(receives) <= 4 + 2 * elapsed, (len(receives), elapsed)


def test_stop_finishes_in_flight_work_or_releases_it(stage: Stage, tmp_path: Path) -> None:
    stop = threading.Event()
    for contractor, sample_id in GOOD[:2]:
        stage.upload(contractor, sample_id, MANIFEST.path_of(sample_id).read_bytes(), tmp_path)

    def stop_then_wait(c: str, s: str) -> IngestItem:
        stop.set()
        time.sleep(1.5)
        return IngestItem(c, s)

    report = ingest_worker(stage.config, stage.settings(drain_s=0.2, idle_exit_s=None),
                           lambda: stage.sb.session, item_for=stop_then_wait, stop=stop)
    assert report.stopped_by == "stop" and report.released >= 1
    # another worker picks up what was released; the result is exactly one feature object each
    ingest_worker(stage.config, stage.settings(), lambda: stage.sb.session)
    for contractor, sample_id in GOOD[:2]:
        assert stage.feature_versions(contractor, sample_id) == 1
    assert stage.queue_depth() == 0


@pytest.mark.parametrize("body, reason", [
    ("not json", "not-json"),
    ("[]", "not-an-s3-event"),
    ('{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete"}]}',
     "not-an-s3-event"),
])
def test_messages_that_are_not_uploads_are_poison(body: str, reason: str) -> None:
    with pytest.raises(PoisonMessage) as err:
        parse_event(body, "bucket")
    assert err.value.reason == reason


def _event(bucket: str, key: str) -> str:
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                    "s3": {"bucket": {"name": bucket},
                                           "object": {"key": key}}}]})


@pytest.mark.parametrize("key", ["raw/c01/a%2Fb", "raw/c01/..", "raw/c01", "raw/c01/x/y",
                                 "quarantine/c01/x", "raw/c01/a+b", "raw/c01/%00"])
def test_keys_outside_the_layout_are_poison(key: str) -> None:
    with pytest.raises(PoisonMessage) as err:
        parse_event(_event("bucket", key), "bucket")
    assert err.value.reason == "bad-key"


def test_an_event_is_parsed_to_its_sample() -> None:
    assert parse_event(_event("bucket", "raw/c01/spk01_u1"), "bucket") == [("c01", "spk01_u1")]
    with pytest.raises(PoisonMessage):
        parse_event(_event("other", "raw/c01/spk01_u1"), "bucket")


# -- scale-out: two worker processes against the server-mode sandbox -------------------------
# (over HTTPS: the hardened buckets deny plain-HTTP requests)

def _worker_cmd(stage: Stage, *extra: str) -> list[str]:
    res = stage.sb.resources
    return [sys.executable, "-m", "securepipe", "ingest", "worker",
            "--queue-url", stage.queues.queue_url,
            "--dead-letter-url", stage.queues.dead_letter_url,
            "--raw-bucket", stage.config.raw_bucket,
            "--features-bucket", stage.config.features_bucket,
            "--archive-bucket", stage.config.archive_bucket,
            "--key-arn", res.kms_key_arn, "--archive-key-arn", res.archive_key_arn,
            "--anchor-bucket", res.bucket("audit"),
            "--profile", Sandbox.PROFILE, "--config-file", str(stage.sb.config_file),
            "--ca-bundle", str(stage.sb.ca_bundle),
            "--concurrency", "4", "--max-receives", "2", "--wait", "1", "--retry-delay", "0",
            *extra]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_two_worker_processes_against_server_mode(tmp_path: Path) -> None:
    with Sandbox(server=True, tls=True) as sb:
        stage = _stage(sb)
        _upload_mix(stage, tmp_path)
        more = [(u.contractor, u.sample_id) for u in MANIFEST.utterances[4:12]]
        for contractor, sample_id in more:
            stage.upload(contractor, sample_id, MANIFEST.path_of(sample_id).read_bytes(),
                         tmp_path)
        # every event twice, so the two processes race on the same samples
        sqs = sb.client("sqs")
        for message in sqs.receive_message(QueueUrl=stage.queues.queue_url,
                                           MaxNumberOfMessages=10,
                                           VisibilityTimeout=0)["Messages"]:
            sqs.send_message(QueueUrl=stage.queues.queue_url, MessageBody=message["Body"])
        procs = [subprocess.Popen(_worker_cmd(stage, "--idle-exit", "4"), env=_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        summaries = []
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-2000:]
            summaries.append(json.loads(out.strip().splitlines()[-1]))
        assert all(s["messages"] > 0 for s in summaries), summaries   # both did work
        _check_mix(stage)
        for contractor, sample_id in more:
            assert stage.feature_versions(contractor, sample_id) == 1   # no duplicates
            assert stage.raw_versions(f"raw/{contractor}/{sample_id}") == 0


def test_sigterm_stops_a_worker_process_cleanly(tmp_path: Path) -> None:
    with Sandbox(server=True, tls=True) as sb:
        stage = _stage(sb)
        proc = subprocess.Popen(_worker_cmd(stage), env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        contractor, sample_id = GOOD[0]
        stage.upload(contractor, sample_id, MANIFEST.path_of(sample_id).read_bytes(), tmp_path)
        deadline = time.monotonic() + 120
        while stage.feature_versions(contractor, sample_id) == 0:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1])["stopped_by"] == "stop"
        assert stage.queue_depth() == 0


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["bucket", "object", "name", "key"]),
                                       inner, max_size=3), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(
    st.text(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.sampled_from(["Records", "Event", "eventSource",
                                                    "eventName", "s3", "bucket", "object",
                                                    "name", "key"]), inner, max_size=4),
                 max_leaves=20).map(json.dumps),
    st.builds(_event, st.just("bucket"), st.text(max_size=60)),
    st.builds(lambda s3: json.dumps({"Records": [{"eventSource": "aws:s3",
                                                  "eventName": "ObjectCreated:Put", "s3": s3}]}),
              _JSON)))
def test_no_message_body_escapes_as_anything_but_poison(body: str) -> None:
    """Whatever arrives on the queue parses to valid samples or is poison with a reason."""
    try:
        pairs = parse_event(body, "bucket")
    except PoisonMessage as poison:
        assert poison.reason in {"not-json", "not-an-s3-event", "wrong-bucket", "bad-key"}
        return
    for contractor, sample_id in pairs:
        IngestItem(contractor, sample_id)   # only valid ids get through


def test_a_message_a_worker_keeps_dying_on_is_redriven_by_sqs(stage: Stage,
                                                               tmp_path: Path) -> None:
    """The queue's own redrive policy is the backstop: a worker that dies mid-message never
    deletes or dead-letters it, and SQS moves it after max_receives + 1 receives."""
    sqs = stage.sb.client("sqs")
    sqs.purge_queue(QueueUrl=stage.queues.queue_url)
    sqs.send_message(QueueUrl=stage.queues.queue_url, MessageBody=_event(
        stage.config.raw_bucket, "raw/c01/never"))
    for _ in range(3):   # received and abandoned (the worker was killed), max_receives = 2
        got = sqs.receive_message(QueueUrl=stage.queues.queue_url, VisibilityTimeout=0)
        assert len(got["Messages"]) == 1
    assert sqs.receive_message(QueueUrl=stage.queues.queue_url).get("Messages", []) == []
    letters = dead_letters(stage.sb.session, stage.queues.dead_letter_url)
    assert [d["reason"] for d in letters] == ["redriven by SQS (the worker died on it)"]
