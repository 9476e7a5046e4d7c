"""Ingest throughput on 3-second clips against the sandbox, in one run.

Reports clips per second for: feature extraction alone (validate + extract, no AWS); the kit's
end-to-end ingest with 1 worker and with 2 worker processes; and a naive pipeline in the common
pattern's style (a new client per call, a shared Fernet key, plaintext written to a temp file,
``librosa.load`` at its default rate, features stored unencrypted, raw deleted with a plain
DELETE). Then the ratios against the issue's targets.

The sandbox runs in server mode in this process, so the worker processes reach it over HTTP as
they would reach AWS; every AWS call therefore costs a local HTTP round trip, served by moto in
this process.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from securepipe.audio import validate_wav, wav_bytes
from securepipe.common_pattern import fernet_decrypt_sample, generate_shared_key
from securepipe.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.features import MEL_SPEC, extract
from securepipe.hardening import apply_bucket_hardening
from securepipe.ingest import IngestConfig, IngestItem, ProfileSessionFactory, ingest_batch
from securepipe.report import format_table
from securepipe.sandbox import Sandbox
from securepipe.upload import upload_sample
from securepipe.voices import make_speakers, synthesize

N_CLIPS = int(os.environ.get("SECUREPIPE_BENCH_CLIPS", "40"))


def _clips(n: int) -> list[bytes]:
    speakers = make_speakers(10, seed=7)
    out = []
    for i in range(n):
        samples = synthesize(speakers[i % 10], i // 10, seed=7, duration_s=3.0)
        out.append(wav_bytes(samples.astype("<i2").tobytes()))
    return out


def _extraction_alone(clips: list[bytes]) -> float:
    start = time.perf_counter()
    for data in clips:
        audio = validate_wav(data)
        extract(audio.samples, audio.sample_rate, MEL_SPEC)
    return len(clips) / (time.perf_counter() - start)


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


def _kit(sb: Sandbox, clips: list[bytes], workers: int, tag: str, tmp: Path) -> float:
    res = sb.resources
    items = [IngestItem("c01", f"{tag}{i:04d}") for i in range(len(clips))]
    _upload_all(sb, clips, items, tmp)
    config = IngestConfig(raw_bucket=res.bucket("raw"), features_bucket=res.bucket("features"),
                          archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                          archive_key_arn=res.archive_key_arn)
    factory = ProfileSessionFactory(Sandbox.PROFILE, str(sb.config_file),
                                    str(sb.ca_bundle) if sb.ca_bundle else None)
    start = time.perf_counter()
    if workers == 1:
        report = ingest_batch(items, config, factory)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_warm, range(workers)))  # start-up is not ingest time
            start = time.perf_counter()
            report = ingest_batch(items, config, factory, executor=pool)
    seconds = time.perf_counter() - start
    assert report.count("processed") == len(clips), report.summary()
    return len(clips) / seconds


def _warm(_: int) -> None:
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    extract(np.full(16_000, 0.1, dtype=np.float32), 16_000, MEL_SPEC)


def _naive(sb: Sandbox, clips: list[bytes], tmp: Path) -> float:
    """The common pattern: new clients per call, shared Fernet key, plaintext on disk."""
    import boto3
    import librosa
    from cryptography.fernet import Fernet

    key = generate_shared_key()
    raw, features = sb.resources.bucket("raw"), sb.resources.bucket("features")
    s3 = sb.session.client("s3")
    from securepipe.hardening import sse_kms_put_args

    args = sse_kms_put_args(sb.resources.kms_key_arn)
    for i, data in enumerate(clips):
        s3.put_object(Bucket=raw, Key=f"naive/{i}", Body=Fernet(key).encrypt(data), **args)
    creds = sb.session.get_credentials()
    start = time.perf_counter()
    for i in range(len(clips)):
        client = boto3.client(  # the article makes a client inside each helper call
            "s3", endpoint_url=sb.endpoint_url, region_name=sb.region, verify=str(sb.ca_bundle),
            aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key)
        token = client.get_object(Bucket=raw, Key=f"naive/{i}")["Body"].read()
        path = tmp / f"naive-{i}.wav"
        path.write_bytes(fernet_decrypt_sample(token, key))   # plaintext on disk
        y, sr = librosa.load(path)                           # default: resample to 22,050 Hz
        mel = librosa.feature.melspectrogram(y=y, sr=sr)
        buf = io.BytesIO()
        np.save(buf, mel)
        client.put_object(Bucket=features, Key=f"naive/{i}.npy", Body=buf.getvalue(), **args)
        client.delete_object(Bucket=raw, Key=f"naive/{i}")  # only a delete marker
        path.unlink()
    return len(clips) / (time.perf_counter() - start)


def main() -> None:
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    clips = _clips(N_CLIPS)
    _warm(0)
    with Sandbox(server=True, tls=True) as sb, tempfile.TemporaryDirectory() as tmp:
        res = sb.resources
        for role, key in (("raw", res.kms_key_arn), ("features", res.kms_key_arn),
                          ("archive", res.archive_key_arn)):
            apply_bucket_hardening(sb.session, res.bucket(role), key)
        rates = {
            "extraction alone": _extraction_alone(clips),
            "kit, 1 worker": _kit(sb, clips, 1, "one", Path(tmp)),
            "kit, 2 workers": _kit(sb, clips, 2, "two", Path(tmp)),
            "naive pipeline": _naive(sb, clips, Path(tmp)),
        }
    print(format_table([{"pipeline": k, "clips/s": v} for k, v in rates.items()]))
    checks = [
        ("kit 1 worker / extraction alone", rates["kit, 1 worker"] / rates["extraction alone"],
         0.6),
        ("kit 1 worker / naive pipeline", rates["kit, 1 worker"] / rates["naive pipeline"], 5.0),
        ("kit 2 workers / kit 1 worker", rates["kit, 2 workers"] / rates["kit, 1 worker"], 1.6),
    ]
    print()
    print(format_table([{"ratio": name, "measured": value, "target": f">= {target}",
                         "result": "PASS" if value >= target else "FAIL"}
                        for name, value, target in checks]))
    print(f"\n{N_CLIPS} clips of 3 s at 16 kHz; sandbox in server mode over HTTPS on this "
          f"machine ({os.cpu_count()} cores); wall clock, one run.")
