"""The sandbox's latency model: seeded per-call delays by service and operation, on both paths."""

from __future__ import annotations

import time

import pytest

from securepipe.errors import InvalidParameterError
from securepipe.sandbox import latency
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.latency import DOCUMENTED, Delay, LatencyModel


def _calls(sb: Sandbox) -> None:
    s3, kms, sqs = sb.client("s3"), sb.client("kms"), sb.client("sqs")
    bucket = sb.resources.bucket("raw")
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    s3.get_object(Bucket=bucket, Key="a/b")["Body"].read()
    s3.head_object(Bucket=bucket, Key="a/b")
    s3.copy_object(Bucket=bucket, Key="a/c", CopySource={"Bucket": bucket, "Key": "a/b"})
    s3.list_object_versions(Bucket=bucket, Prefix="a/")
    s3.delete_object(Bucket=bucket, Key="a/b")
    blob = kms.encrypt(KeyId=sb.resources.kms_key_arn, Plaintext=b"x")["CiphertextBlob"]
    kms.decrypt(CiphertextBlob=blob)
    sqs.create_queue(QueueName="q")


EXPECTED = {("s3", "PutObject"), ("s3", "GetObject"), ("s3", "HeadObject"),
            ("s3", "CopyObject"), ("s3", "ListObjectVersions"), ("s3", "DeleteObject"),
            ("kms", "Encrypt"), ("kms", "Decrypt"), ("sqs", "CreateQueue")}


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_every_call_is_classified_and_delayed(server: bool) -> None:
    with Sandbox(server=server) as sb:
        model = LatencyModel(seed=3)
        with latency.enabled(model):
            start = time.perf_counter()
            _calls(sb)
            elapsed = time.perf_counter() - start
        assert set(model.calls) == EXPECTED
        assert all(n == 1 for n in model.calls.values())
        assert elapsed >= model.waited_s > 6 * 0.09   # six S3 calls of at least ~100 ms
        before = model.total_calls()
        sb.client("s3").list_buckets()   # switched off: no longer counted or delayed
        assert model.total_calls() == before


def test_draws_are_seeded_and_match_the_stated_distribution() -> None:
    a, b = LatencyModel(seed=7), LatencyModel(seed=7)
    draws = [a.delay_for("s3", "GetObject") for _ in range(4000)]
    assert draws[:50] == [b.delay_for("s3", "GetObject") for _ in range(50)]
    draws.sort()
    p5, p50, p95 = (1000 * draws[int(len(draws) * q)] for q in (0.05, 0.5, 0.95))
    spec = DOCUMENTED[("s3", "*")]
    assert 95 < p5 < 110 and 130 < p50 < 150 and 180 < p95 < 205   # "roughly 100-200 ms"
    assert spec.percentile(5) == pytest.approx(100.8, abs=0.5)
    assert LatencyModel(scale=0).delay_for("kms", "Decrypt") == 0


def test_the_most_specific_delay_wins_and_bad_figures_are_refused() -> None:
    model = LatencyModel(delays={("s3", "GetObject"): Delay(0.0, 0.0), ("s3", "*"): Delay(50, 0),
                                 ("*", "*"): Delay(7, 0)})
    assert model.delay_for("s3", "GetObject") == 0
    assert model.delay_for("s3", "PutObject") == pytest.approx(0.05)
    assert model.delay_for("sts", "AssumeRole") == pytest.approx(0.007)
    with pytest.raises(InvalidParameterError):
        Delay(-1)
    with (latency.enabled(LatencyModel()), pytest.raises(InvalidParameterError),
          latency.enabled(LatencyModel())):
        pass
