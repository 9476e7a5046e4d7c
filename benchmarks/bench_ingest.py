"""Ingest throughput on 3-second clips against the sandbox with its latency model on, in one run.

Every AWS call waits a delay drawn from :mod:`securepipe.sandbox.latency` (S3 about 100-200 ms as
AWS's S3 performance guidance says; KMS and SQS by stated assumption), so throughput is measured
as it would behave across a network rather than against moto's CPU alone. Clips per second for:

* **extraction alone**: validate + extract the stored feature spec; no AWS, no crypto;
* **kit compute**: what the kit computes per clip without AWS, through the kit's own functions
  in ingest's order: the raw object's digest check and decryption in memory (the kit's
  ``Envelope``: AWS Encryption SDK, the kit's algorithm suite and framing, a local AES wrapping
  key in place of KMS), validate, extract, serialise, encrypt, the ciphertext digest, compare;
  both compute-only figures time each clip back to back, ``ROUNDS`` times, and sum each clip's
  fastest time (so load from other processes inflates neither);
* **naive**: the common pattern, serial: a new client per sample, a shared Fernet key,
  plaintext written to a temp file, ``librosa.load`` at its default rate, features stored
  unencrypted, raw "deleted" with a plain DELETE (a delete marker);
* **kit worker**: :func:`securepipe.features.worker.ingest_worker` with ``CONCURRENCY`` samples
  in flight, fed by the raw bucket's S3 -> SQS notifications; its clients are made before the
  clock starts (:func:`~securepipe.features.ingest.prepare_clients`, which the worker itself
  calls at start-up), as the floor's are, so both measure a running worker, not its start;
* **floor**: the same worker loop, the same concurrency and the same AWS calls per clip as the
  kit (listed, the consent gate's head and DynamoDB read and index update, read, KMS Decrypt and
  GenerateDataKey, store, read back, delete, delete the message), doing only the extraction.

Every clip is uploaded as the kit uploads: naming a speaker whose consent the registry (loaded
from the manifest, rebased to today) admits, since consent gates every ingest.

The kit worker and the floor each run in a process of their own against the sandbox in server
mode (HTTPS), as a worker runs against AWS: the sandbox's CPU (moto, the kit's emulation, the
latency model) is then not the worker's. The sandbox still answers from one process, so it caps
every pipeline's throughput; the floor / naive ratio printed beside (a) is that cap.

Then the ratios against issue 18's targets: kit worker / naive >= 5; kit worker / floor >= 0.7;
kit compute / extraction alone >= 0.6; and the AWS calls per clip by operation.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from securepipe import clock
from securepipe.data.dataset import load_manifest
from securepipe.data.voices import make_speakers, synthesize
from securepipe.encryption.envelope import (
    Envelope,
    EnvelopeConfig,
    SampleContext,
    botocore_session_of,
)
from securepipe.encryption.hardening import apply_bucket_hardening, sse_kms_put_args
from securepipe.encryption.upload import (
    META_CIPHERTEXT_SHA256,
    META_FORMAT,
    META_SPEAKER,
    open_sample,
    sample_key,
    upload_sample,
)
from securepipe.features.audio import validate_wav, wav_bytes
from securepipe.features.extract import MEL_SPEC, extract, one_blas_thread, to_bytes
from securepipe.features.ingest import (
    IngestConfig,
    IngestItem,
    ProfileSessionFactory,
    SampleOutcome,
)
from securepipe.features.worker import WorkerSettings, setup_notifications
from securepipe.lessons.antipatterns import fernet_decrypt_sample, generate_shared_key
from securepipe.report import format_table
from securepipe.retention.consent import ConsentRegistry
from securepipe.sandbox import latency
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.loader import own_loaders

N_CLIPS = int(os.environ.get("SECUREPIPE_BENCH_CLIPS", "48"))
CONCURRENCY = int(os.environ.get("SECUREPIPE_BENCH_CONCURRENCY", "32"))
SEED = 18


@dataclass
class Rate:
    label: str
    clips: int
    seconds: float
    calls: int | None = None

    @property
    def per_second(self) -> float:
        return self.clips / self.seconds

    def row(self) -> dict[str, Any]:
        return {"pipeline": self.label, "clips/s": self.per_second,
                "ms/clip": 1000 * self.seconds / self.clips,
                "AWS calls/clip": "-" if self.calls is None else self.calls / self.clips}


def _clips(n: int) -> list[bytes]:
    speakers = make_speakers(10, seed=7)
    out = []
    for i in range(n):
        samples = synthesize(speakers[i % 10], i // 10, seed=7, duration_s=3.0)
        out.append(wav_bytes(samples.astype("<i2").tobytes()))
    return out


def _warm() -> None:
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    extract(np.full(16_000, 0.1, dtype=np.float32), 16_000, MEL_SPEC)


# -- compute only (no AWS) -------------------------------------------------------------------

ROUNDS = 7   # compute-only rounds; each clip's fastest of its rounds is kept (as timeit does)


def _extraction_alone(data: bytes) -> None:
    audio = validate_wav(data)
    extract(audio.samples, audio.sample_rate, MEL_SPEC)


class _LocalKeyEnvelope(Envelope):
    """The kit's :class:`Envelope` (same SDK client, algorithm suite, commitment policy,
    framing, context checks) with a local AES-256 wrapping key in place of KMS: the SDK's own
    ``RawMasterKey``, so only the KMS round trip is left out."""

    def __init__(self) -> None:
        from aws_encryption_sdk import DefaultCryptoMaterialsManager
        from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
        from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
        from aws_encryption_sdk.key_providers.raw import RawMasterKey

        self._init_engine(EnvelopeConfig(
            key_arns="arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"))
        self._cmm = DefaultCryptoMaterialsManager(master_key_provider=RawMasterKey(
            provider_id="bench", key_id=b"bench-key", wrapping_key=WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                wrapping_key=os.urandom(32), wrapping_key_type=EncryptionKeyType.SYMMETRIC)))


def _kit_compute_setup(clips: list[bytes]) -> Callable[[int], None]:
    """The kit's compute for clip ``i``, in ingest's order and through the kit's own functions,
    with a local wrapping key in place of KMS: the raw object's digest check and decryption in
    memory (:func:`~securepipe.encryption.upload.open_sample`), validation, extraction,
    serialisation, encryption under the features' context, the ciphertext digest its
    metadata records, and the byte-for-byte read-back comparison."""
    envelope = _LocalKeyEnvelope()
    upload_ctx = SampleContext("c01", "x", "speech-model-training")
    feature_ctx = SampleContext("c01", "x", "speech-features")
    sealed = []
    for data in clips:
        message = envelope.encrypt_bytes(data, upload_ctx)
        sealed.append((message, {META_FORMAT: upload_ctx.format_version,
                                 META_CIPHERTEXT_SHA256: hashlib.sha256(message).hexdigest()}))

    def run(i: int) -> None:
        message, metadata = sealed[i]
        plain = open_sample(envelope, message, metadata, upload_ctx)
        audio = validate_wav(plain)
        blob = to_bytes(extract(audio.samples, audio.sample_rate, MEL_SPEC), MEL_SPEC)
        out = envelope.encrypt_bytes(blob, feature_ctx)
        hashlib.sha256(out).hexdigest()               # the features' metadata digest
        assert hmac.compare_digest(bytes(out), out)   # the kit compares the read-back

    return run


def _compute_only(clips: list[bytes]) -> tuple[Rate, Rate]:
    """Extraction alone and the kit's compute, clip by clip back to back (so a burst of load
    on a shared machine hits both alike), ``ROUNDS`` times; the sum over clips of each clip's
    fastest time."""
    kit = _kit_compute_setup(clips)
    alone_s = [float("inf")] * len(clips)
    kit_s = [float("inf")] * len(clips)
    clock_ = time.perf_counter
    for _ in range(ROUNDS):
        for i, data in enumerate(clips):
            start = clock_()
            _extraction_alone(data)
            middle = clock_()
            kit(i)
            end = clock_()
            alone_s[i] = min(alone_s[i], middle - start)
            kit_s[i] = min(kit_s[i], end - middle)
    return (Rate("extraction alone (validate + extract; no AWS)", len(clips), sum(alone_s)),
            Rate("kit compute (decrypt, validate, extract, encrypt; no AWS)", len(clips),
                 sum(kit_s)))


# -- against the sandbox in server mode, latency model on -------------------------------------
# The worker runs in a process of its own, as in production: moto's CPU (parsing, the kit's
# emulation, the latency model's sleeps) is then the server's, in this process, and not the
# worker's. In-process, moto answers inside the worker's own threads under its GIL, and a
# 32-in-flight run measured mostly moto (about 6 ms of CPU per call, 11 calls a clip).

def _setup(sb: Sandbox) -> tuple[IngestConfig, WorkerSettings, ConsentRegistry]:
    res = sb.resources
    for role, key in (("raw", res.kms_key_arn), ("features", res.kms_key_arn),
                      ("archive", res.archive_key_arn)):
        apply_bucket_hardening(sb.session, res.bucket(role), key)
    config = IngestConfig(raw_bucket=res.bucket("raw"), features_bucket=res.bucket("features"),
                          archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                          archive_key_arn=res.archive_key_arn)
    registry = ConsentRegistry(sb.session)   # the manifest's ten speakers, consenting today
    registry.load_manifest_consents(load_manifest(), rebase_to=clock.now().date())
    queues = setup_notifications(sb.session, config.raw_bucket)
    sqs = sb.client("sqs")   # S3's test event is not a clip
    for message in sqs.receive_message(QueueUrl=queues.queue_url,
                                       MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=queues.queue_url, ReceiptHandle=message["ReceiptHandle"])
    settings = WorkerSettings(queue_url=queues.queue_url, dead_letter_url=queues.dead_letter_url,
                              concurrency=CONCURRENCY, wait_s=1, max_messages=N_CLIPS)
    return config, settings, registry


def _upload_all(sb: Sandbox, config: IngestConfig, registry: ConsentRegistry,
                clips: list[bytes], tag: str, tmp: Path) -> list[IngestItem]:
    items = [IngestItem("c01", f"{tag}{i:04d}") for i in range(len(clips))]
    envelope = Envelope(sb.session, EnvelopeConfig(key_arns=config.key_arn))
    for i, (item, data) in enumerate(zip(items, clips, strict=True)):
        path = tmp / "clip.wav"
        path.write_bytes(data)
        upload_sample(sb.session, envelope, path, bucket=config.raw_bucket, key_arn=config.key_arn,
                      context=SampleContext(item.contractor, item.sample_id,
                                            config.upload_purpose),
                      speaker=f"spk{i % 10 + 1:02d}", consent=registry)
    return items


def floor_step(session: boto3.Session, config: IngestConfig, clips: list[bytes],
               pool: int = 10) -> Callable[[IngestItem], SampleOutcome]:
    """A per-sample step making the kit's AWS calls (listed, the consent gate's head, read and
    index update, read, KMS GenerateDataKey and Decrypt, store, the consent fence's re-read,
    read back, delete) and computing only the extraction; the clips are decoded beforehand.
    Its clients keep ``pool`` connections each, as the kit worker's do
    (:func:`~securepipe.features.ingest.prepare_clients`)."""
    from botocore.config import Config

    decoded = [validate_wav(d).samples for d in clips]
    botocore_session_of(session).set_default_client_config(
        Config(max_pool_connections=max(10, pool)))
    s3, kms = session.client("s3"), session.client("kms")
    registry = ConsentRegistry(session, create=False)
    put_args = sse_kms_put_args(config.key_arn)

    def floor(item: IngestItem) -> SampleOutcome:
        key = sample_key(item.contractor, item.sample_id)
        versions = s3.list_object_versions(Bucket=config.raw_bucket, Prefix=key)["Versions"]
        head = s3.head_object(Bucket=config.raw_bucket, Key=key)   # the consent gate's calls
        speaker = head["Metadata"][META_SPEAKER]
        registry.admit(speaker, item.sample_id, contractor=item.contractor, at=clock.now())
        s3.get_object(Bucket=config.raw_bucket, Key=key)["Body"].read()
        data_key = kms.generate_data_key(KeyId=config.key_arn, KeySpec="AES_256")
        kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])
        samples = decoded[int(item.sample_id[-4:])]
        matrix = extract(samples, 16_000, MEL_SPEC)   # the only compute
        feat_key = config.features_key(item)
        s3.put_object(Bucket=config.features_bucket, Key=feat_key, Body=matrix.tobytes(),
                      **put_args)
        registry.check_consent(speaker, clock.now())   # the consent fence's re-read
        s3.get_object(Bucket=config.features_bucket, Key=feat_key)["Body"].read()
        for version in versions:
            s3.delete_object(Bucket=config.raw_bucket, Key=key, VersionId=version["VersionId"])
        return SampleOutcome(item, "processed")

    return floor


def _worker_process(sb: Sandbox, kind: str, config: IngestConfig,
                    settings: WorkerSettings) -> tuple[float, dict[str, Any]]:
    """Run :mod:`benchmarks.ingest_worker_process` for ``kind`` ("kit" or "floor"); its
    ingest_worker wall time and report."""
    spec = {"kind": kind, "clips": N_CLIPS, "profile": Sandbox.PROFILE,
            "config_file": str(sb.config_file), "ca_bundle": str(sb.ca_bundle),
            "config": {"raw_bucket": config.raw_bucket,
                       "features_bucket": config.features_bucket,
                       "archive_bucket": config.archive_bucket, "key_arn": config.key_arn,
                       "archive_key_arn": config.archive_key_arn},
            "settings": {"queue_url": settings.queue_url,
                         "dead_letter_url": settings.dead_letter_url,
                         "concurrency": settings.concurrency, "wait_s": settings.wait_s,
                         "max_messages": settings.max_messages}}
    env = dict(os.environ, SECUREPIPE_CLOCK=clock.now().isoformat())
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-m", "benchmarks.ingest_worker_process",
                           json.dumps(spec)], env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker process failed: {done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    summary = result["summary"]
    assert summary["processed"] == N_CLIPS, (summary, result["failed"])
    return float(result["seconds"]), summary


def _run_worker(sb: Sandbox, kind: str, config: IngestConfig, settings: WorkerSettings,
                registry: ConsentRegistry, model: latency.LatencyModel, clips: list[bytes],
                tmp: Path) -> tuple[Rate, Counter[tuple[str, str]]]:
    _upload_all(sb, config, registry, clips, kind, tmp)   # not timed, no latency
    with latency.enabled(model):
        model.reset_counts()
        seconds, _ = _worker_process(sb, kind, config, settings)
        calls = Counter(model.calls)
    label = (f"kit worker, {CONCURRENCY} in flight" if kind == "kit"
             else f"floor: same calls, {CONCURRENCY} in flight, extraction only")
    return Rate(label, len(clips), seconds, sum(calls.values())), calls


def _naive(sb: Sandbox, model: latency.LatencyModel, clips: list[bytes], tmp: Path) -> Rate:
    """The common pattern, serial: new clients per call, shared Fernet key, plaintext on disk."""
    import librosa
    from cryptography.fernet import Fernet

    key = generate_shared_key()
    raw, features = sb.resources.bucket("raw"), sb.resources.bucket("features")
    args = sse_kms_put_args(sb.resources.kms_key_arn)
    s3 = sb.session.client("s3")
    for i, data in enumerate(clips):   # outside raw/: no notification
        s3.put_object(Bucket=raw, Key=f"naive/{i}", Body=Fernet(key).encrypt(data), **args)
    factory = ProfileSessionFactory(Sandbox.PROFILE, str(sb.config_file), str(sb.ca_bundle))
    # A new session per sample parses botocore's service models each time on a real account;
    # the sandbox's shared loader (securepipe.sandbox.loader) would hide that cost here.
    with latency.enabled(model), own_loaders():
        model.reset_counts()
        start = time.perf_counter()
        for i in range(len(clips)):
            client = factory().client("s3")  # the article makes a client inside each helper
            token = client.get_object(Bucket=raw, Key=f"naive/{i}")["Body"].read()
            path = tmp / f"naive-{i}.wav"
            path.write_bytes(fernet_decrypt_sample(token, key))   # plaintext on disk
            y, sr = librosa.load(path)                           # resamples to 22,050 Hz
            mel = librosa.feature.melspectrogram(y=y, sr=sr)
            buf = io.BytesIO()
            np.save(buf, mel)
            client.put_object(Bucket=features, Key=f"naive/{i}.npy", Body=buf.getvalue(),
                              **args)
            client.delete_object(Bucket=raw, Key=f"naive/{i}")  # only a delete marker
            path.unlink()
        seconds = time.perf_counter() - start
        calls = model.total_calls()
    return Rate("naive pipeline, serial", len(clips), seconds, calls)


def _verdict(name: str, value: float, target: float, note: str = "") -> dict[str, Any]:
    return {"ratio": name, "measured": value, "target": f">= {target}",
            "result": "PASS" if value >= target else "FAIL", "note": note}


def main() -> None:
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    clips = _clips(N_CLIPS)
    _warm()
    with one_blas_thread():   # as the kit's batch and worker run (securepipe.features.extract)
        alone, compute = _compute_only(clips)
    model = latency.LatencyModel(seed=SEED)
    with tempfile.TemporaryDirectory() as tmp_name, Sandbox(server=True, tls=True) as sb:
        tmp = Path(tmp_name)
        config, settings, registry = _setup(sb)
        kit, calls = _run_worker(sb, "kit", config, settings, registry, model, clips, tmp)
        floor, _ = _run_worker(sb, "floor", config, settings, registry, model, clips, tmp)
        naive = _naive(sb, model, clips, tmp)
    print(format_table([alone.row(), compute.row()]))
    print("\nserver-mode sandbox (HTTPS), each worker in its own process, latency model on "
          "(S3 ~100-200 ms, KMS ~15 ms, SQS ~20 ms):")
    print(format_table([r.row() for r in (kit, floor, naive)]))
    print("\nthe kit worker's AWS calls per clip:")
    print(format_table([{"service": s, "operation": op, "calls/clip": n / N_CLIPS}
                        for (s, op), n in sorted(calls.items())]))
    checks = [
        _verdict("(a) kit worker / naive serial", kit.per_second / naive.per_second, 5.0,
                 f"ceiling here: floor / naive = {floor.per_second / naive.per_second:.2f}"),
        _verdict("(b) kit worker / floor (same calls, same concurrency)",
                 kit.per_second / floor.per_second, 0.7),
        _verdict("(c) kit compute / extraction alone", compute.per_second / alone.per_second,
                 0.6),
    ]
    print()
    print(format_table(checks))
    print(f"\n{N_CLIPS} clips of 3 s at 16 kHz, feature spec {MEL_SPEC.kind}-{MEL_SPEC.version}; "
          f"{CONCURRENCY} samples in flight; latency seed {SEED}; {os.cpu_count()} cores; "
          "wall clock, one run.")
