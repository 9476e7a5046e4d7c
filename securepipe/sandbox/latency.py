"""A latency model for the sandbox: per-call delays, so throughput is measured as across a network.

moto answers in-process (or on localhost) in a few milliseconds of CPU; AWS answers across a
network. With the model switched on (:func:`enabled`), every request the sandbox answers first
waits a delay drawn, per service and operation, from a log-normal distribution with a stated
median and spread, from one seeded generator (so a run is reproducible up to thread
scheduling). The wait is a ``time.sleep`` in the thread that made the call (in-process) or the
server thread answering it (server mode), so concurrent calls overlap as they would on AWS.
This is emulation of the network, not of AWS's servers: it adds no throttling and no errors.

Where the figures come from (``DOCUMENTED``):

* **S3**: AWS's S3 performance guidance (the "Best Practices Design Patterns: Optimizing Amazon
  S3 Performance" whitepaper and the user guide's performance design patterns,
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance-design-patterns.html)
  speaks of consistent small-object latencies of roughly 100-200 ms. The model takes that range
  as the 5th to 95th percentile: median 140 ms, log-sd 0.2 (5%: 101 ms, 95%: 195 ms). Calls
  from inside the same region are often faster; this is the documented, conservative figure.
* **KMS**: AWS publishes request quotas
  (https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html) but **no
  latency figure**. Assumption: an in-region symmetric Decrypt/GenerateDataKey takes about
  15 ms (median), log-sd 0.4 (95%: 29 ms).
* **SQS**: no published latency figure either. Assumption: 20 ms median, log-sd 0.4, on top of
  any long-poll wait moto itself performs.
* anything else (STS, IAM, ...): assumption, 30 ms median, log-sd 0.4.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from securepipe.errors import InvalidParameterError
from securepipe.sandbox.requests import headers_get


@dataclass(frozen=True)
class Delay:
    """A log-normal delay: ``median_ms * exp(sigma * N(0, 1))``, capped at ``cap_ms``."""

    median_ms: float
    sigma: float = 0.3
    cap_ms: float = 5_000.0

    def __post_init__(self) -> None:
        if not 0 <= self.median_ms <= self.cap_ms <= 60_000 or not 0 <= self.sigma <= 3:
            raise InvalidParameterError("need 0 <= median_ms <= cap_ms <= 60000, sigma in [0, 3]")

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile in milliseconds (before the cap)."""
        from statistics import NormalDist

        return self.median_ms * math.exp(self.sigma * NormalDist().inv_cdf(p / 100))


#: The model's figures: ``(service, operation)`` with ``"*"`` for any; the most specific wins.
DOCUMENTED: Mapping[tuple[str, str], Delay] = {
    ("s3", "*"): Delay(140.0, 0.2),     # AWS S3 performance guidance: roughly 100-200 ms
    ("kms", "*"): Delay(15.0, 0.4),     # assumption: no published KMS latency figure
    ("sqs", "*"): Delay(20.0, 0.4),     # assumption: no published SQS latency figure
    ("*", "*"): Delay(30.0, 0.4),       # assumption
}


@dataclass
class LatencyModel:
    """Per-call delays by service and operation, from one seeded generator; counts every call.

    ``scale`` multiplies every delay (0 keeps the counting and drops the waits).
    """

    delays: Mapping[tuple[str, str], Delay] = field(default_factory=lambda: dict(DOCUMENTED))
    seed: int = 0
    scale: float = 1.0
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    waited_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.scale <= 100:
            raise InvalidParameterError("scale must be in [0, 100]")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def delay_for(self, service: str, operation: str) -> float:
        """Seconds to wait before answering this call (and count it)."""
        spec = (self.delays.get((service, operation)) or self.delays.get((service, "*"))
                or self.delays.get(("*", "*")))
        with self._lock:
            self.calls[(service, operation)] += 1
            if spec is None:
                return 0.0
            ms = min(spec.cap_ms, spec.median_ms * math.exp(spec.sigma * self._rng.gauss()))
            seconds = ms * self.scale / 1000
            self.waited_s += seconds
            return seconds

    def total_calls(self, service: str | None = None) -> int:
        """Calls counted so far (of one service, or all)."""
        with self._lock:
            return sum(n for (s, _), n in self.calls.items() if service in (None, s))

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.waited_s = 0.0


_active: LatencyModel | None = None
_switch = threading.Lock()


@contextmanager
def enabled(model: LatencyModel | None = None) -> Iterator[LatencyModel]:
    """Switch the latency model on for every sandbox in this process for the duration."""
    global _active
    model = model or LatencyModel()
    with _switch:
        if _active is not None:
            raise InvalidParameterError("a latency model is already switched on")
        _active = model
    try:
        yield model
    finally:
        with _switch:
            _active = None


def active() -> LatencyModel | None:
    """The model switched on, if any."""
    return _active


_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/([a-z0-9-]+)/aws4_request")
_S3_BUCKET_OPS = {"versions": "ListObjectVersions", "delete": "DeleteObjects",
                  "notification": "BucketNotification", "policy": "BucketPolicy",
                  "versioning": "BucketVersioning", "encryption": "BucketEncryption"}


def classify(method: str, url: str, headers: Mapping[str, Any]) -> tuple[str, str]:
    """``(service, operation)`` of a signed AWS request, as far as the model needs it."""
    auth = headers_get(headers, "authorization") or ""
    if isinstance(auth, bytes):
        auth = auth.decode("latin-1")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    match = _SCOPE.search(auth) or _SCOPE.search("Credential=" + query.get(
        "X-Amz-Credential", "").replace("%2F", "/"))
    service = match.group(1) if match else "unknown"
    target = headers_get(headers, "x-amz-target")
    if isinstance(target, bytes):
        target = target.decode("latin-1")
    if target:
        return service, str(target).rsplit(".", 1)[-1]
    if service != "s3":
        return service, query.get("Action", method.upper())
    path = parts.path.strip("/")
    virtual_hosted = ".s3." in parts.netloc or ".s3-" in parts.netloc   # bucket in the host
    has_key = bool(path) if virtual_hosted else "/" in path
    for name, op in _S3_BUCKET_OPS.items():
        if name in query and not (name == "delete" and method.upper() != "POST"):
            return "s3", op
    method = method.upper()
    if method == "PUT" and headers_get(headers, "x-amz-copy-source"):
        return "s3", "CopyObject"
    if not has_key:
        return "s3", {"GET": "ListObjects", "HEAD": "HeadBucket"}.get(method, f"{method}Bucket")
    return "s3", {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject",
                  "DELETE": "DeleteObject", "POST": "PostObject"}.get(method, method)


def pause_for(method: str, url: str, headers: Mapping[str, Any]) -> None:
    """The hook the sandbox calls for every request it answers: wait, if the model is on."""
    model = _active
    if model is None:
        return
    seconds = model.delay_for(*classify(method, url, headers))
    if seconds > 0:
        time.sleep(seconds)
