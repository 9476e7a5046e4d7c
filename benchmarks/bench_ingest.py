"""Ingest throughput on 3-second clips against the sandbox, in one run.

Clips per second for:

* **extraction alone**: validate + extract the stored feature spec; no AWS, no crypto;
* **floor**: extraction plus one GetObject of each clip's ciphertext from the sandbox, and
  nothing else. No pipeline that reads its input from this sandbox can beat it, so its ratio
  to extraction alone bounds what any pipeline can reach here;
* **kit**: :func:`securepipe.features.ingest.ingest_batch` end to end (decrypt, validate, extract,
  encrypt, store, verify, delete every raw version, audit);
* **naive**: the common pattern's style: a new client per sample, a shared Fernet key,
  plaintext written to a temp file, ``librosa.load`` at its default rate, features stored
  unencrypted, raw "deleted" with a plain DELETE (a delete marker).

Twice: against the in-process sandbox (moto's stubber; the fastest the sandbox gets, one
process), and against the sandbox in server mode over HTTPS, which worker *processes* need:
the kit with 1 worker process and with 2. Every AWS call is counted where the sandbox answers
it (moto's in-process stubber, or the server's enforcement middleware).

Then the ratios against the issue's targets: kit / extraction alone >= 0.6, kit / naive >= 5,
2 workers / 1 worker >= 1.6.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from securepipe.data.voices import make_speakers, synthesize
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.hardening import apply_bucket_hardening, sse_kms_put_args
from securepipe.encryption.upload import sample_key, upload_sample
from securepipe.features.audio import validate_wav, wav_bytes
from securepipe.features.extract import MEL_SPEC, extract
from securepipe.features.ingest import IngestConfig, IngestItem, ProfileSessionFactory, ingest_batch
from securepipe.lessons.antipatterns import fernet_decrypt_sample, generate_shared_key
from securepipe.lessons.report import format_table
from securepipe.sandbox.account import Sandbox

N_CLIPS = int(os.environ.get("SECUREPIPE_BENCH_CLIPS", "40"))


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


def _warm(_: int = 0) -> None:
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    extract(np.full(16_000, 0.1, dtype=np.float32), 16_000, MEL_SPEC)


def _extraction_alone(clips: list[bytes]) -> Rate:
    start = time.perf_counter()
    for data in clips:
        audio = validate_wav(data)
        extract(audio.samples, audio.sample_rate, MEL_SPEC)
    return Rate("extraction alone (no AWS)", len(clips), time.perf_counter() - start)


# -- counting AWS calls ----------------------------------------------------------------------

class _Calls:
    """A thread-safe count."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1


@contextmanager
def _counting(owner: type, method: str) -> Iterator[_Calls]:
    """Count calls of ``owner.method`` for the duration (requests the sandbox serves)."""
    calls = _Calls()
    original = getattr(owner, method)

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.add()
        return original(self, *args, **kwargs)

    setattr(owner, method, counted)
    try:
        yield calls
    finally:
        setattr(owner, method, original)


def _counting_in_process() -> Any:
    """Every request moto's in-process stubber answers."""
    from moto.core.botocore_stubber import BotocoreStubber

    return _counting(BotocoreStubber, "process_request")


def _counting_server() -> Any:
    """Every request the server-mode sandbox answers, from any process."""
    from securepipe.sandbox.emulation import Enforcer

    return _counting(Enforcer, "check")


# -- the pipelines ---------------------------------------------------------------------------

BENCH_SPEAKER = "bench01"


def _setup(sb: Sandbox) -> IngestConfig:
    res = sb.resources
    for role, key in (("raw", res.kms_key_arn), ("features", res.kms_key_arn),
                      ("archive", res.archive_key_arn)):
        apply_bucket_hardening(sb.session, res.bucket(role), key)
    # consent gates every ingest: one benchmark speaker whose consent began today
    from types import SimpleNamespace

    from securepipe import clock
    from securepipe.data.dataset import Consent, Speaker
    from securepipe.retention.consent import ConsentRegistry

    today = clock.now().date()
    registry = ConsentRegistry(sb.session)
    registry.load_manifest_consents(SimpleNamespace(speakers=[Speaker(
        BENCH_SPEAKER, "c01", {}, Consent("speech-model-training", today, 365,
                                          today + dt.timedelta(days=365)))]))
    return IngestConfig(raw_bucket=res.bucket("raw"), features_bucket=res.bucket("features"),
                        archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                        archive_key_arn=res.archive_key_arn, consent_table=registry.table)


def _upload_all(sb: Sandbox, clips: list[bytes], items: list[IngestItem], tmp: Path) -> None:
    res = sb.resources
    envelope = Envelope(sb.session, EnvelopeConfig(key_arns=res.kms_key_arn))
    for item, data in zip(items, clips, strict=True):
        path = tmp / "clip.wav"
        path.write_bytes(data)
        upload_sample(sb.session, envelope, path, bucket=res.bucket("raw"),
                      key_arn=res.kms_key_arn,
                      context=SampleContext(item.contractor, item.sample_id,
                                            "speech-model-training"))


def _items(tag: str, n: int) -> list[IngestItem]:
    return [IngestItem("c01", f"{tag}{i:04d}", speaker=BENCH_SPEAKER) for i in range(n)]


def _floor(sb: Sandbox, clips: list[bytes], tag: str, tmp: Path,
           counting: Callable[[], Any]) -> Rate:
    """Extraction plus one GetObject per clip: the least a pipeline reading the sandbox does."""
    items = _items(tag, len(clips))
    _upload_all(sb, clips, items, tmp)
    s3 = sb.session.client("s3")
    bucket = sb.resources.bucket("raw")
    with counting() as calls:
        start = time.perf_counter()
        for item, data in zip(items, clips, strict=True):
            s3.get_object(Bucket=bucket, Key=sample_key(item.contractor, item.sample_id)
                          )["Body"].read()
            audio = validate_wav(data)   # the plaintext, since the floor decrypts nothing
            extract(audio.samples, audio.sample_rate, MEL_SPEC)
        seconds = time.perf_counter() - start
    return Rate("floor: one GetObject + extraction", len(clips), seconds, calls.count)


def _kit(sb: Sandbox, config: IngestConfig, clips: list[bytes], tag: str, tmp: Path,
         counting: Callable[[], Any], workers: int | None) -> Rate:
    """``workers=None``: in this process; otherwise a process pool of that size."""
    items = _items(tag, len(clips))
    _upload_all(sb, clips, items, tmp)
    if workers is None:
        factory: Callable[[], Any] = lambda: sb.session  # noqa: E731
        label = "kit, in this process"
    else:
        factory = ProfileSessionFactory(Sandbox.PROFILE, str(sb.config_file),
                                        str(sb.ca_bundle) if sb.ca_bundle else None)
        label = f"kit, {workers} worker process{'es' if workers > 1 else ''}"
    with counting() as calls:
        if workers is None:
            start = time.perf_counter()
            report = ingest_batch(items, config, factory)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                list(pool.map(_warm, range(workers)))   # start-up is not ingest time
                start = time.perf_counter()
                report = ingest_batch(items, config, factory, executor=pool)
        seconds = time.perf_counter() - start
    assert report.count("processed") == len(clips), report.summary()
    return Rate(label, len(clips), seconds, calls.count)


def _naive(sb: Sandbox, clips: list[bytes], tmp: Path, counting: Callable[[], Any]) -> Rate:
    """The common pattern: new clients per call, shared Fernet key, plaintext on disk."""
    import boto3
    import librosa
    from cryptography.fernet import Fernet

    key = generate_shared_key()
    raw, features = sb.resources.bucket("raw"), sb.resources.bucket("features")
    args = sse_kms_put_args(sb.resources.kms_key_arn)
    s3 = sb.session.client("s3")
    for i, data in enumerate(clips):
        s3.put_object(Bucket=raw, Key=f"naive/{i}", Body=Fernet(key).encrypt(data), **args)
    creds = sb.session.get_credentials()
    endpoint: dict[str, Any] = {}
    if sb.endpoint_url:
        endpoint["endpoint_url"] = sb.endpoint_url
    if sb.ca_bundle:
        endpoint["verify"] = str(sb.ca_bundle)
    with counting() as calls:
        start = time.perf_counter()
        for i in range(len(clips)):
            client = boto3.client(  # the article makes a client inside each helper call
                "s3", region_name=sb.region, aws_access_key_id=creds.access_key,
                aws_secret_access_key=creds.secret_key, **endpoint)
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
    return Rate("naive pipeline", len(clips), seconds, calls.count)


def _verdict(name: str, value: float, target: float, note: str = "") -> dict[str, Any]:
    return {"ratio": name, "measured": value, "target": f">= {target}",
            "result": "PASS" if value >= target else "FAIL", "note": note}


def main() -> None:
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    clips = _clips(N_CLIPS)
    _warm()
    alone = _extraction_alone(clips)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with Sandbox() as sb:
            config = _setup(sb)
            local = {
                "floor": _floor(sb, clips, "floor", tmp, _counting_in_process),
                "kit": _kit(sb, config, clips, "kit", tmp, _counting_in_process, None),
                "naive": _naive(sb, clips, tmp, _counting_in_process),
            }
        with Sandbox(server=True, tls=True) as sb:
            config = _setup(sb)
            server = {
                "floor": _floor(sb, clips, "floor", tmp, _counting_server),
                "kit1": _kit(sb, config, clips, "one", tmp, _counting_server, 1),
                "kit2": _kit(sb, config, clips, "two", tmp, _counting_server, 2),
                "naive": _naive(sb, clips, tmp, _counting_server),
            }
    print(format_table([alone.row()]))
    print("\nin-process sandbox (moto's stubber, one process):")
    print(format_table([r.row() for r in local.values()]))
    print("\nserver-mode sandbox over HTTPS (moto in this process, workers are processes):")
    print(format_table([r.row() for r in server.values()]))
    x = alone.per_second
    checks = [
        _verdict("kit / extraction alone, in-process", local["kit"].per_second / x, 0.6,
                 f"floor reaches {local['floor'].per_second / x:.2f}"),
        _verdict("kit (1 worker) / extraction alone, server", server["kit1"].per_second / x,
                 0.6, f"floor reaches {server['floor'].per_second / x:.2f}"),
        _verdict("kit / naive, in-process", local["kit"].per_second
                 / local["naive"].per_second, 5.0),
        _verdict("kit (1 worker) / naive, server", server["kit1"].per_second
                 / server["naive"].per_second, 5.0),
        _verdict("kit 2 workers / 1 worker, server", server["kit2"].per_second
                 / server["kit1"].per_second, 1.6),
    ]
    print()
    print(format_table(checks))
    print(f"\n{N_CLIPS} clips of 3 s at 16 kHz, feature spec {MEL_SPEC.kind}-{MEL_SPEC.version}; "
          f"{os.cpu_count()} cores; wall clock, one run.")
