"""Per-principal bulk-read detector over CloudTrail GetObject data events.

The common pattern alarms on ``NumberOfObjects``, which a download never moves. This detector
reads what does move: who read which object, when, and how many bytes left
(``additionalEventData.bytesTransferredOut``). For each principal (``userIdentity.arn``) it
measures, at every event, windowed metrics and compares them with thresholds learned from that
principal's normal traffic:

* **burst**: requests and bytes over 1 and 10 minutes (sliding windows);
* **drip**: requests and bytes over 1 hour, distinct objects and bytes over 6 hours, so a slow
  reader that never bursts still crosses its long-window baseline;
* **cross-prefix**: distinct ``raw/<contractor>/`` prefixes over 10 minutes and 1 hour (a
  contractor session normally touches one);
* **new-principal**: any read by a principal absent from the baseline.

A threshold is ``margin x`` the principal's baseline peak (or a high quantile) for that metric
and window, clipped to ``[floor, limit]``: the floor keeps near-idle principals from alerting on
trivial reads, the limit caps what even a heavy reader may do. A *declared* larger run (an
allow-list entry: principal, time range, factor, declared in advance) multiplies that
principal's thresholds for windows that overlap the range.

Windows: requests and bytes use exact sliding windows ``(t - w, t]`` ending at each event;
distinct counts (prefixes, objects) use hopping windows of length ``w`` every ``w/2`` (any
activity shorter than ``w/2`` falls wholly inside one). Alerts are raised when a metric
crosses its threshold, once per episode (re-armed after ``w`` below it), with the crossing
event's time as ``alert_time``; the computation is deterministic, so replaying the same traffic
gives the same alerts.

The batch path works on columns (:class:`EventColumns`: principal codes, int64 millisecond
times, bytes, prefix codes, object codes) with numpy: one sort by (principal, time), then
``searchsorted`` and cumulative sums per window, and one sort per distinct-count item; no Python
loop touches individual events. :func:`columns_from_events` adapts CloudTrail dicts;
malformed events raise :class:`MalformedEventError` in strict mode or are counted as rejected.
:class:`StreamDetector` feeds events one at a time and keeps only the longest window of history:
its memory is the events inside that window plus one vocabulary entry per principal, prefix and
object; the learned state (:class:`Baseline`) is one threshold per principal and rule.

In the sandbox these alerts stand in for CloudWatch alarms, which moto never evaluates (gap
``cloudwatch-alarms``): :func:`publish_alerts` publishes them to the alarm SNS topic itself.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import boto3
import numpy as np

from securepipe.audit.events import key_prefix, parse_time_ms
from securepipe.errors import InvalidParameterError, MalformedEventError

Metric = Literal["requests", "bytes", "prefixes", "objects"]
MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class Rule:
    """One metric over one window, with its absolute floor and limit."""

    name: str
    metric: Metric
    window_s: int
    floor: float
    limit: float | None = None

    @property
    def window_ms(self) -> int:
        return self.window_s * 1000

    @property
    def label(self) -> str:
        return f"{self.name}:{self.metric}/{_window_label(self.window_s)}"


def _window_label(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}min"
    return f"{seconds}s"


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("burst", "requests", 60, floor=30, limit=6_000),
    Rule("burst", "bytes", 60, floor=32 * MIB, limit=4 * GIB),
    Rule("burst", "requests", 600, floor=150, limit=30_000),
    Rule("burst", "bytes", 600, floor=128 * MIB, limit=16 * GIB),
    Rule("drip", "requests", 3600, floor=300, limit=60_000),
    Rule("drip", "bytes", 3600, floor=256 * MIB, limit=32 * GIB),
    Rule("drip", "objects", 21600, floor=400, limit=200_000),
    Rule("drip", "bytes", 21600, floor=512 * MIB, limit=64 * GIB),
    Rule("cross-prefix", "prefixes", 600, floor=4),
    Rule("cross-prefix", "prefixes", 3600, floor=6),
)


@dataclass(frozen=True)
class DetectorConfig:
    """Rules and how thresholds are learned (``margin x quantile`` of baseline values)."""

    rules: tuple[Rule, ...] = DEFAULT_RULES
    margin: float = 1.5
    quantile: float = 1.0
    new_principal: bool = True

    def __post_init__(self) -> None:
        if not self.rules:
            raise InvalidParameterError("at least one rule is needed")
        if not 0.5 <= self.quantile <= 1.0:
            raise InvalidParameterError("quantile must be in [0.5, 1.0]")
        if self.margin < 1.0:
            raise InvalidParameterError("margin must be >= 1")
        for rule in self.rules:
            if rule.metric not in ("requests", "bytes", "prefixes", "objects"):
                raise InvalidParameterError(f"unknown metric {rule.metric!r}")
            if rule.window_s < 1 or rule.floor < 0:
                raise InvalidParameterError(f"bad window or floor in {rule}")

    @property
    def max_window_ms(self) -> int:
        return max(r.window_ms for r in self.rules)


@dataclass(frozen=True)
class Declaration:
    """A larger run declared in advance: ``principal``'s thresholds x ``factor`` for windows
    that overlap ``[start, end]``."""

    principal: str
    start: dt.datetime
    end: dt.datetime
    factor: float

    def __post_init__(self) -> None:
        if not 1.0 <= self.factor <= 1000.0:
            raise InvalidParameterError("a declaration's factor must be in [1, 1000]")
        if _ms(self.end) < _ms(self.start):
            raise InvalidParameterError("a declaration ends before it starts")


@dataclass(frozen=True)
class Alert:
    """One threshold crossing by one principal."""

    principal: str
    rule: str
    metric: str
    window: str
    observed: float
    threshold: float
    first_event_time: dt.datetime
    alert_time: dt.datetime
    raised_by: str = "securepipe.audit.detector"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["first_event_time"] = _iso(self.first_event_time)
        out["alert_time"] = _iso(self.alert_time)
        return out


# -- columns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventColumns:
    """GetObject events as parallel arrays (one entry per event)."""

    principal: np.ndarray  # int32 codes into ``principals``
    time_ms: np.ndarray  # int64 milliseconds since the epoch (UTC)
    bytes: np.ndarray  # int64 bytes transferred out
    prefix: np.ndarray  # int32 codes (bucket + first two key components)
    obj: np.ndarray  # int64 codes (bucket + key)
    principals: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])

    def validate(self) -> None:
        """Raise :class:`MalformedEventError` unless the columns are well formed."""
        arrays = {"principal": self.principal, "time_ms": self.time_ms, "bytes": self.bytes,
                  "prefix": self.prefix, "obj": self.obj}
        n = len(self)
        for name, arr in arrays.items():
            if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.shape[0] != n:
                raise MalformedEventError(None, f"column {name!r} is not a 1-D array of {n}")
            if not np.issubdtype(arr.dtype, np.integer):
                raise MalformedEventError(None, f"column {name!r} must be integer, is {arr.dtype}")
        if n == 0:
            return
        checks = (
            (self.principal < 0) | (self.principal >= len(self.principals)),
            self.time_ms < 0, self.bytes < 0, self.prefix < 0, self.obj < 0,
        )
        for name, bad in zip(("principal", "time_ms", "bytes", "prefix", "obj"), checks,
                             strict=True):
            if bad.any():
                index = int(np.flatnonzero(bad)[0])
                raise MalformedEventError(index, f"column {name!r} out of range at {index}")

    def take(self, index: np.ndarray) -> EventColumns:
        return EventColumns(self.principal[index], self.time_ms[index], self.bytes[index],
                            self.prefix[index], self.obj[index], self.principals)

    @staticmethod
    def concat(parts: Sequence[EventColumns]) -> EventColumns:
        """Concatenate columns, re-coding principals into one vocabulary."""
        vocab: dict[str, int] = {}
        codes = []
        for part in parts:
            remap = np.array([vocab.setdefault(p, len(vocab)) for p in part.principals],
                             dtype=np.int32)
            codes.append(remap[part.principal] if len(part) else part.principal.astype(np.int32))
        return EventColumns(
            np.concatenate(codes).astype(np.int32) if parts else np.zeros(0, np.int32),
            np.concatenate([p.time_ms for p in parts]).astype(np.int64),
            np.concatenate([p.bytes for p in parts]).astype(np.int64),
            np.concatenate([p.prefix for p in parts]).astype(np.int32),
            np.concatenate([p.obj for p in parts]).astype(np.int64),
            tuple(vocab),
        )


@dataclass
class Vocabulary:
    """String -> code tables shared by the adapter across calls (keeps codes stable)."""

    principals: dict[str, int] = field(default_factory=dict)
    prefixes: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)


@dataclass
class AdapterStats:
    accepted: int = 0
    ignored: int = 0
    rejected: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)



def _check_event(event: Any) -> tuple[str | None, tuple[str, int, int, str, str] | None]:
    """Returns (problem, None), (None, None) for events to ignore, or (None, fields)."""
    if not isinstance(event, Mapping):
        return "event is not an object", None
    name = event.get("eventName")
    if not isinstance(name, str):
        return "eventName missing or not a string", None
    if name != "GetObject" or "errorCode" in event:
        return None, None
    identity = event.get("userIdentity")
    arn = identity.get("arn") if isinstance(identity, Mapping) else None
    if not isinstance(arn, str) or not arn:
        return "userIdentity.arn missing or not a string", None
    when = parse_time_ms(event.get("eventTime"))
    if when is None:
        return "eventTime missing or not an ISO-8601 UTC time", None
    params = event.get("requestParameters")
    if not isinstance(params, Mapping):
        return "requestParameters missing", None
    bucket, key = params.get("bucketName"), params.get("key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket:
        return "requestParameters.bucketName/key missing or not strings", None
    extra = event.get("additionalEventData")
    size = 0
    if extra is not None:
        if not isinstance(extra, Mapping):
            return "additionalEventData is not an object", None
        size = extra.get("bytesTransferredOut", 0)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return "bytesTransferredOut is not a non-negative integer", None
    return None, (arn, when, size, bucket, key)


def columns_from_events(
    events: Iterable[Any], *, strict: bool = True, vocab: Vocabulary | None = None,
    stats: AdapterStats | None = None,
) -> EventColumns:
    """CloudTrail event dicts -> :class:`EventColumns` (successful GetObject events only).

    Other events (PutObject, KMS, refused calls) are counted as ignored. A malformed event
    (missing fields, wrong types, unparseable ``eventTime``) raises
    :class:`MalformedEventError` with its index when ``strict``; otherwise it is counted in
    ``stats.rejected`` (with the reason) and skipped.
    """
    vocab = vocab if vocab is not None else Vocabulary()
    stats = stats if stats is not None else AdapterStats()
    principals, prefixes, objects = vocab.principals, vocab.prefixes, vocab.objects
    p_out: list[int] = []
    t_out: list[int] = []
    b_out: list[int] = []
    x_out: list[int] = []
    o_out: list[int] = []
    for index, event in enumerate(events):
        problem, fields = _check_event(event)
        if problem is not None:
            if strict:
                raise MalformedEventError(index, problem)
            stats.rejected += 1
            stats.reasons[problem] += 1
            continue
        if fields is None:
            stats.ignored += 1
            continue
        arn, when, size, bucket, key = fields
        code = principals.get(arn)
        if code is None:
            code = principals[arn] = len(principals)
        path = f"{bucket}/{key}"
        pre = f"{bucket}/{key_prefix(key)}"
        pcode = prefixes.get(pre)
        if pcode is None:
            pcode = prefixes[pre] = len(prefixes)
        ocode = objects.get(path)
        if ocode is None:
            ocode = objects[path] = len(objects)
        p_out.append(code)
        t_out.append(when)
        b_out.append(size)
        x_out.append(pcode)
        o_out.append(ocode)
    stats.accepted += len(p_out)
    return EventColumns(np.array(p_out, dtype=np.int32), np.array(t_out, dtype=np.int64),
                        np.array(b_out, dtype=np.int64), np.array(x_out, dtype=np.int32),
                        np.array(o_out, dtype=np.int64), tuple(principals))


# -- the vectorised core ------------------------------------------------------------------------


@dataclass
class _Sorted:
    order: np.ndarray  # positions in the input, in (principal, time) order
    p: np.ndarray
    t: np.ndarray
    key: np.ndarray
    index: np.ndarray


def _sort(cols: EventColumns, max_window_ms: int) -> _Sorted:
    p = cols.principal.astype(np.int64)
    t = cols.time_ms.astype(np.int64)
    n = len(cols)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return _Sorted(empty, empty, empty, empty, empty)
    rel = t - int(t.min()) + max_window_ms + 1  # >= 1 after subtracting any window
    bits = max(int(rel.max()).bit_length(), 1)
    if int(p.max()).bit_length() + bits > 62:
        raise InvalidParameterError("time span too long for one batch; split it")
    key = (p << bits) | rel
    order = np.argsort(key, kind="stable")
    return _Sorted(order, p[order], t[order], key[order], np.arange(n, dtype=np.int64))


def _previous_time(s: _Sorted, items: np.ndarray) -> np.ndarray:
    """For each event (sorted order), the time of the principal's previous read of the same item
    (or a very negative number)."""
    n = s.t.shape[0]
    width = int(items.max()) + 1 if n else 1
    group = s.p * width + items
    order = np.argsort(group, kind="stable")  # stable: time order inside a group
    g = group[order]
    tt = s.t[order]
    prev = np.empty(n, np.int64)
    prev[0] = np.iinfo(np.int64).min // 4
    prev[1:] = np.where(g[1:] == g[:-1], tt[:-1], np.iinfo(np.int64).min // 4)
    out = np.empty(n, np.int64)
    out[order] = prev
    return out


def _distinct(s: _Sorted, prev_t: np.ndarray, window_ms: int) -> np.ndarray:
    """Distinct items so far in the event's hopping window (length w, every w/2); the larger of
    the two window phases that contain the event."""
    best = np.zeros(s.t.shape[0], np.int64)
    for phase in (0, window_ms // 2):
        wid = (s.t + phase) // window_ms
        first = ((prev_t + phase) // window_ms != wid).astype(np.int64)
        change = np.empty(s.t.shape[0], bool)
        change[0] = True
        change[1:] = (s.p[1:] != s.p[:-1]) | (wid[1:] != wid[:-1])
        start = np.maximum.accumulate(np.where(change, s.index, 0))
        csum = np.cumsum(first)
        running = csum - csum[start] + first[start]
        np.maximum(best, running, out=best)
    return best


def _metric_values(cols: EventColumns, s: _Sorted, rules: Sequence[Rule]) -> Iterator[np.ndarray]:
    """Each rule's metric at each event, in sorted order, one rule at a time (so only one
    float array per rule is alive at once)."""
    lefts: dict[int, np.ndarray] = {}
    csum_bytes: np.ndarray | None = None
    prev: dict[str, np.ndarray] = {}
    for rule in rules:
        if rule.metric in ("requests", "bytes"):
            left = lefts.get(rule.window_ms)
            if left is None:
                left = lefts[rule.window_ms] = np.searchsorted(
                    s.key, s.key - rule.window_ms, side="right")
            if rule.metric == "requests":
                yield (s.index - left + 1).astype(np.float64)
            else:
                if csum_bytes is None:
                    csum_bytes = np.concatenate(
                        ([0], np.cumsum(cols.bytes.astype(np.int64)[s.order])))
                yield (csum_bytes[s.index + 1] - csum_bytes[left]).astype(np.float64)
        else:
            items = prev.get(rule.metric)
            if items is None:
                source = cols.prefix if rule.metric == "prefixes" else cols.obj
                items = prev[rule.metric] = _previous_time(
                    s, source.astype(np.int64)[s.order])
            yield _distinct(s, items, rule.window_ms).astype(np.float64)


class Baseline:
    """Per-principal thresholds learned from normal traffic (see :meth:`fit`)."""

    def __init__(self, config: DetectorConfig, principals: tuple[str, ...],
                 peaks: np.ndarray, thresholds: np.ndarray, events: int) -> None:
        self.config = config
        self.principals = principals
        self.peaks = peaks  # (rules, principals)
        self.thresholds = thresholds  # (rules, principals)
        self.events = events
        self._index = {p: i for i, p in enumerate(principals)}

    @classmethod
    def fit(cls, cols: EventColumns, config: DetectorConfig | None = None) -> Baseline:
        """Learn each principal's ``quantile`` of every rule's metric over ``cols`` (normal
        traffic), then threshold = clip(margin x that value, floor, limit)."""
        config = config or DetectorConfig()
        cols.validate()
        if len(cols) == 0:
            raise InvalidParameterError("a baseline needs traffic")
        s = _sort(cols, config.max_window_ms)
        present = np.unique(s.p)
        bounds = np.searchsorted(s.p, present)
        names = tuple(cols.principals[int(c)] for c in present)
        peaks = np.zeros((len(config.rules), present.shape[0]))
        for r, v in enumerate(_metric_values(cols, s, config.rules)):
            if config.quantile >= 1.0:
                peaks[r] = np.maximum.reduceat(v, bounds)
            else:
                order = np.lexsort((v, s.p))
                vs = v[order]
                ends = np.append(bounds[1:], v.shape[0])
                pick = bounds + np.floor(config.quantile * (ends - bounds - 1)).astype(np.int64)
                peaks[r] = vs[pick]
        thresholds = np.empty_like(peaks)
        for r, rule in enumerate(config.rules):
            limit = np.inf if rule.limit is None else rule.limit
            thresholds[r] = np.clip(config.margin * peaks[r], rule.floor, limit)
        return cls(config, names, peaks, thresholds, len(cols))

    def threshold(self, principal: str, rule: Rule | int) -> float:
        """The learned threshold (the rule's floor for a principal never seen)."""
        r = rule if isinstance(rule, int) else self.config.rules.index(rule)
        i = self._index.get(principal)
        return float(self.config.rules[r].floor if i is None else self.thresholds[r, i])

    def knows(self, principal: str) -> bool:
        return principal in self._index

    def table(self) -> list[dict[str, Any]]:
        """Rows (principal x rule) for notebooks: peak seen and threshold."""
        rows = []
        for i, principal in enumerate(self.principals):
            for r, rule in enumerate(self.config.rules):
                rows.append({"principal": principal, "rule": rule.label,
                             "baseline peak": float(self.peaks[r, i]),
                             "threshold": float(self.thresholds[r, i])})
        return rows

    def aligned(self, principals: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Thresholds (rules x principals) for another vocabulary, and a known-principal mask."""
        floors = np.array([r.floor for r in self.config.rules])
        table = np.repeat(floors[:, None], len(principals), axis=1).astype(np.float64)
        known = np.zeros(len(principals), bool)
        for j, name in enumerate(principals):
            i = self._index.get(name)
            if i is not None:
                table[:, j] = self.thresholds[:, i]
                known[j] = True
        return table, known


@dataclass
class Detection:
    """What :meth:`Detector.detect` found: alerts, and a per-event verdict (input order)."""

    alerts: list[Alert]
    flagged: np.ndarray
    events: int
    rejected: int = 0


class Detector:
    """Evaluates GetObject traffic against a :class:`Baseline` (batch, vectorised)."""

    def __init__(self, baseline: Baseline, declarations: Sequence[Declaration] = ()) -> None:
        self.baseline = baseline
        self.config = baseline.config
        self.declarations = tuple(declarations)

    def detect(self, cols: EventColumns, *, validate: bool = True) -> Detection:
        """Evaluate ``cols``; see :func:`_evaluate`."""
        if validate:
            cols.validate()
        return _evaluate(self, cols, state=None, new_from=0)

    def detect_events(self, events: Iterable[Any], *, strict: bool = False) -> Detection:
        """The dict path: adapt CloudTrail events (rejecting malformed ones), then detect."""
        stats = AdapterStats()
        cols = columns_from_events(events, strict=strict, stats=stats)
        result = self.detect(cols, validate=False)
        result.rejected = stats.rejected
        return result


@dataclass
class _StreamState:
    last_alert: dict[tuple[str, int], int] = field(default_factory=dict)
    announced: set[str] = field(default_factory=set)


def _evaluate(det: Detector, cols: EventColumns, state: _StreamState | None,
              new_from: int) -> Detection:
    """Core: metrics per rule and event, thresholds (with declarations), verdicts, alerts.

    Only events at input positions ``>= new_from`` can raise alerts (the stream passes its
    retained history before them); ``state`` carries cool-downs and announced new principals.
    """
    config = det.config
    rules = config.rules
    n = len(cols)
    state = state or _StreamState()
    if n == 0:
        return Detection([], np.zeros(0, bool), 0)
    s = _sort(cols, config.max_window_ms)
    table, known = det.baseline.aligned(cols.principals)
    flagged_sorted = np.zeros(n, bool)
    same_p = np.empty(n, bool)
    same_p[0] = False
    same_p[1:] = s.p[1:] == s.p[:-1]
    gap = np.empty(n, np.int64)
    gap[0] = 0
    gap[1:] = s.t[1:] - s.t[:-1]
    is_new = s.order >= new_from
    candidates: list[tuple[int, int, int, float, float]] = []  # time, rule, index, value, thr
    codes = {name: i for i, name in enumerate(cols.principals)}
    for r, (rule, values) in enumerate(zip(rules, _metric_values(cols, s, rules), strict=True)):
        thr = table[r][s.p]
        for decl in det.declarations:
            code = codes.get(decl.principal)
            if code is None:
                continue
            lo = _ms(decl.start)
            hi = _ms(decl.end) + rule.window_ms
            a = np.searchsorted(s.p, code, side="left")
            b = np.searchsorted(s.p, code, side="right")
            i0 = a + np.searchsorted(s.t[a:b], lo, side="left")
            i1 = a + np.searchsorted(s.t[a:b], hi, side="left")
            thr[i0:i1] *= decl.factor
        over = values > thr
        flagged_sorted |= over
        prev_over = np.empty(n, bool)
        prev_over[0] = False
        prev_over[1:] = over[:-1]
        starts = over & ~(prev_over & same_p & (gap < rule.window_ms)) & is_new
        for i in np.flatnonzero(starts):
            candidates.append((int(s.t[i]), r, int(i), float(values[i]), float(thr[i])))
    alerts: list[Alert] = []
    if config.new_principal:
        unknown = ~known[s.p]
        flagged_sorted |= unknown
        firsts = np.flatnonzero(unknown & ~same_p & is_new)
        for i in firsts:
            name = cols.principals[int(s.p[i])]
            if name in state.announced:
                continue
            state.announced.add(name)
            seen_at = _dt(int(s.t[i]))
            alerts.append(Alert(name, "new-principal", "requests", "-", 1.0, 0.0, seen_at, seen_at))
    candidates.sort()
    for when, r, idx, value, thr_value in candidates:
        rule = rules[r]
        name = cols.principals[int(s.p[idx])]
        last = state.last_alert.get((name, r))
        if last is not None and when - last < rule.window_ms:
            continue
        state.last_alert[(name, r)] = when
        first = int(np.searchsorted(s.key, s.key[idx] - rule.window_ms, side="right"))
        alerts.append(Alert(name, rule.name, rule.metric, _window_label(rule.window_s),
                            value, thr_value, _dt(int(s.t[first])), _dt(when)))
    alerts.sort(key=lambda a: (a.alert_time, a.principal, a.rule, a.metric, a.window))
    flagged = np.empty(n, bool)
    flagged[s.order] = flagged_sorted
    return Detection(alerts, flagged, n)


class StreamDetector:
    """Feed CloudTrail events one by one; malformed ones are counted, never raised.

    Events are buffered and evaluated in micro-batches (every ``batch`` events, or on
    :meth:`flush`) together with the retained history, which is trimmed to the longest window:
    memory stays bounded by the events inside that window; alerts equal the batch path's.
    Events must arrive in time order (as CloudTrail delivers them, roughly).
    """

    def __init__(self, detector: Detector, *, batch: int = 10_000) -> None:
        self.detector = detector
        self.batch = batch
        self.vocab = Vocabulary()
        self.stats = AdapterStats()
        self.alerts: list[Alert] = []
        self._pending: list[Any] = []
        self._history: EventColumns | None = None
        self._state = _StreamState()

    @property
    def rejected(self) -> int:
        return self.stats.rejected

    @property
    def retained(self) -> int:
        """Events kept as history (those within the longest window of the newest one)."""
        return 0 if self._history is None else len(self._history)

    def feed(self, event: Any) -> list[Alert]:
        """Add one event; returns alerts raised if this completed a micro-batch."""
        self._pending.append(event)
        if len(self._pending) >= self.batch:
            return self.flush()
        return []

    def flush(self) -> list[Alert]:
        """Evaluate pending events; returns the new alerts."""
        pending, self._pending = self._pending, []
        try:
            fresh = columns_from_events(pending, strict=False, vocab=self.vocab,
                                        stats=self.stats)
        except Exception as exc:  # never let one batch kill the stream
            self.stats.rejected += len(pending)
            self.stats.reasons[f"batch failed: {type(exc).__name__}"] += len(pending)
            return []
        if len(fresh) == 0:
            return []
        history = self._history
        cols = fresh if history is None else EventColumns.concat([history, fresh])
        new_from = 0 if history is None else len(history)
        result = _evaluate(self.detector, cols, self._state, new_from)
        horizon = int(cols.time_ms.max()) - self.detector.config.max_window_ms
        keep = np.flatnonzero(cols.time_ms > horizon)
        self._history = cols.take(keep)
        self.alerts.extend(result.alerts)
        return result.alerts


# -- publishing --------------------------------------------------------------------------------


def publish_alerts(session: boto3.Session, topic_arn: str, alerts: Sequence[Alert]) -> list[str]:
    """Publish each alert as a JSON message to an SNS topic; returns the message ids.

    Wraps SNS Publish: https://docs.aws.amazon.com/sns/latest/api/API_Publish.html
    In the sandbox this replaces the CloudWatch alarm action that moto never fires; the message
    says so (``"raised_by": "securepipe.audit.detector"``).
    """
    if not isinstance(topic_arn, str) or not topic_arn.startswith("arn:aws:sns:"):
        raise InvalidParameterError(f"not an SNS topic ARN: {topic_arn!r}")
    sns = session.client("sns")
    ids = []
    for alert in alerts:
        body = alert.as_dict()
        body["note"] = ("raised by the kit's detector over CloudTrail-shaped GetObject events; "
                        "in the sandbox, moto never evaluates CloudWatch alarms")
        out = sns.publish(
            TopicArn=topic_arn,
            Subject=f"securepipe alert: {alert.rule} {alert.metric}"[:100],
            Message=json.dumps(body, sort_keys=True, ensure_ascii=True),
            MessageAttributes={
                "rule": {"DataType": "String", "StringValue": alert.rule},
                "principal": {"DataType": "String", "StringValue": alert.principal[:256]},
            },
        )
        ids.append(str(out["MessageId"]))
    return ids


# -- helpers -----------------------------------------------------------------------------------


def _ms(value: dt.datetime) -> int:
    moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
