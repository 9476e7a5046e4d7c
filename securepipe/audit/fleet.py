"""Fleet-aware exfiltration detection over every S3 read and probe path.

Reads :class:`~securepipe.audit.events.EventBatch` (normalised CloudTrail S3 data events: roles
not sessions, every read path, denied requests, source attributes) and raises :class:`FleetAlert`
when one of :data:`FLEET_RULES` crosses its threshold. Every rule is the same shape, so each is
one windowed aggregate a SQL engine can run over the CloudTrail table::

    SELECT <group>, floor((t + phase) / w) AS win, <aggregate>
    FROM events WHERE <filter> GROUP BY <group>, win HAVING <aggregate> > <threshold>

* ``filter``: ``read`` (successful GetObject, CopyObject/UploadPartCopy source, Select, except
  the pipeline's flow: a read of an object written in the day before, by a role that read at
  least half of that bucket's uploads in the baseline, naming no ``versionId``; any other
  role's read of a fresh upload, and a read of a named version, count as reads), ``fresh`` (the
  pipeline's flow, with its own budgets per role and fleet-wide), ``probe`` (Head/List),
  ``denied`` (any errorCode), ``restore``, ``decrypt`` (a KMS ``Decrypt`` or
  ``GenerateDataKey``: the group's "bucket" is then the KMS key; novelty filters read S3
  events only), ``egress`` (any successful read, fresh or not, from
  a network the role never read from in the baseline: each VPC endpoint id is its own network,
  and one owned by another account, per ``vpcEndpointAccountId``, is never familiar), and the
  novelty filters ``copy-out`` (a copy to a bucket never a copy destination in the baseline, or
  owned by another account when it was not then), ``new-principal``, ``new-source`` (two or more
  of network, user-agent family and authentication method never seen for the role),
  ``new-action`` (a read API, GET, copy, Select or restore, the role never used; a new probe is
  left to the probe rules);
* ``group``: the ``role`` (an AssumedRole's sessions all count for their role; a new session
  name is *not* news), ``role-bucket``, ``session-bucket`` (for spread: one session wandering
  across prefixes) with the role's threshold, or ``fleet-bucket``: everyone except the roles
  that read the bulk of that bucket in the baseline, so ten principals each under their own
  threshold still add up;
* ``aggregate``: ``count``, ``bytes``, distinct ``objects`` or distinct ``prefixes``. Reads are
  judged by what leaves and how much of the dataset (objects, bytes), never by request counts: a
  download in ranged parts is several requests for one object;
* windows of ``w`` every ``w/2`` (two phases; an activity shorter than ``w/2`` falls wholly in one);
* ``threshold``: learned (``margin x`` the baseline peak, at least ``floor``) or fixed. A
  *relative* rule divides by the bucket's size (objects, or prefixes for ``prefixes``), so a
  dataset grown by 60 % raises the thresholds with it. The size of a bucket at time t is the larger
  of its baseline size and the distinct objects (prefixes) successfully read, each with at
  least an eighth of the bucket's typical object (:data:`SIZE_MIN_SHARE`, so empty or tiny
  objects uploaded by the thousand do not inflate it), in the 24-hour windows (both phases)
  containing t; the same windowed aggregate again.

An alert names the crossing event's time (``alert_time``), once per rule, group and window (the
two phases of one episode are reported once), and at most once per rule family, group and UTC
day: a new source crossing an hourly rule all day, or a role's hourly and weekly volume rules
crossed by the same reads, are one alert (the first), not one per window or per rule. Novelty
of a source is judged for principals the baseline knows (an unknown principal is news once, as
``new-principal``), and a role that reads the bulk of a bucket every day by design is judged
there by how much it reads (bytes) and where to (egress), not by how fast it walks the objects
(``bulk_exempt`` rules): a faster data loader reads nothing it did not read before. The
thresholds are data: :class:`FleetBaseline` serialises to JSON (:meth:`FleetBaseline.to_json`).

:class:`FleetDetector` is a stream: batches go through a reorder buffer (events may arrive up to
``lag_s`` late, as CloudTrail delivers them, and give the same alerts as in order) and are
evaluated incrementally, keeping per (group, open window) one aggregate and, for distinct
counts, the items seen in it: memory is bounded by principals x windows (and the items they
touch per window), not by the number of events or files. :func:`detect_fleet` is the same code
fed one batch.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from securepipe.audit.events import (
    COPY,
    DECRYPT,
    GET,
    HEAD,
    KINDS,
    LIST,
    RESTORE,
    SELECT,
    WRITE,
    EventBatch,
    Vocab,
    empty_batch,
)
from securepipe.errors import InvalidParameterError

Filter = Literal["read", "fresh", "probe", "denied", "restore", "decrypt", "copy-out",
                 "egress", "new-principal", "new-source", "new-action"]
Group = Literal["role", "role-bucket", "session-bucket", "fleet-bucket"]
Aggregate = Literal["count", "bytes", "objects", "prefixes"]
MIB = 1024 * 1024
HOUR = 3600
DAY = 86_400
SIZE_WINDOW_S = DAY


@dataclass(frozen=True)
class FleetRule:
    """One windowed aggregate and how its threshold is set (see the module docstring)."""

    name: str
    filter: Filter
    group: Group
    aggregate: Aggregate
    window_s: int
    floor: float
    minimum: float = 0.0
    relative: bool = False
    learned: bool = True
    family: str = ""
    mitre: str = ""
    #: the most a learned threshold may be, for any group but a bulk reader: a share of the
    #: dataset (relative rules), or ``cap_objects`` objects when that is more (a small dataset's
    #: ordinary day is a larger share of it). A baseline poisoned by slow theft cannot raise a
    #: threshold past it.
    cap: float | None = None
    cap_objects: float = 0.0
    #: leave out the (role, bucket) pairs that read the bulk of the bucket in the baseline (the
    #: rate of walking objects a role reads in full every day tells nothing; its bytes do)
    bulk_exempt: bool = False

    @property
    def window_ms(self) -> int:
        return self.window_s * 1000


#: Caps on learned shares of the dataset for principals that are not bulk readers: one role
#: in a day or six hours, everyone else together in six hours, and in a week.
SHARE_CAP = 0.03
FLEET_SHARE_CAP = 0.10
FLEET_WEEK_CAP = 0.15

FLEET_RULES: tuple[FleetRule, ...] = (
    # volume per role and bucket, relative to the bucket's size
    # (objects, not requests: a download in ranged parts is one object read, not several)
    FleetRule("reads-10min", "read", "role-bucket", "objects", 600, 0.0, 40, True,
              family="volume", mitre="T1530", bulk_exempt=True),
    FleetRule("reads-1h", "read", "role-bucket", "objects", HOUR, 0.0, 200, True,
              family="volume", mitre="T1530", bulk_exempt=True),
    FleetRule("bytes-1h", "read", "role-bucket", "bytes", HOUR, 0.0, 32 * MIB, True,
              family="volume", mitre="T1530"),
    # the week's budget: a second full read beside a legitimate weekly one is twice the bytes
    FleetRule("bytes-7d", "read", "role-bucket", "bytes", 7 * DAY, 0.0, 256 * MIB, True,
              family="volume", mitre="T1530"),
    # share of the dataset read per role and bucket, and fleet-wide
    FleetRule("share-6h", "read", "role-bucket", "objects", 6 * HOUR, 0.02, 40, True,
              family="share", mitre="T1530", cap=SHARE_CAP, cap_objects=300),
    FleetRule("share-24h", "read", "role-bucket", "objects", DAY, 0.02, 60, True,
              family="share", mitre="T1530", cap=SHARE_CAP, cap_objects=300),
    FleetRule("fleet-share-6h", "read", "fleet-bucket", "objects", 6 * HOUR, 0.05, 100, True,
              family="share", mitre="T1530", cap=FLEET_SHARE_CAP, cap_objects=300),
    # the week: per-identity budgets add up (four identities each under its own daily and
    # weekly budget still read a sixth of the dataset in a week)
    FleetRule("fleet-share-7d", "read", "fleet-bucket", "objects", 7 * DAY, 0.05, 100, True,
              family="share", mitre="T1530", cap=FLEET_WEEK_CAP, cap_objects=1000),
    # fresh uploads read by the roles whose baseline reads them (the pipeline): per role, and
    # every such read fleet-wide (a second reader of each upload doubles the count)
    # (bytes per upload in the day: a second reader of each upload doubles it; bytes, so a
    # download in ranged parts is one object's worth)
    FleetRule("fresh-24h", "fresh", "role-bucket", "bytes", DAY, 0.0, 32 * MIB, True,
              family="volume", mitre="T1530"),
    FleetRule("fleet-fresh-24h", "fresh", "fleet-bucket", "bytes", DAY, 0.0, 64 * MIB, True,
              family="volume", mitre="T1530"),
    # one session wandering across prefixes (threshold: its role's, relative to the bucket)
    FleetRule("spread-1h", "read", "session-bucket", "prefixes", HOUR, 0.0, 3, True,
              family="spread", mitre="T1530"),
    FleetRule("spread-24h", "read", "session-bucket", "prefixes", DAY, 0.0, 4, True,
              family="spread", mitre="T1530"),
    # probing: metadata reads and listings, refused requests, restores
    FleetRule("probe-10min", "probe", "role", "count", 600, 100.0,
              family="probe", mitre="T1619"),
    FleetRule("probe-1h", "probe", "role", "count", HOUR, 300.0, family="probe", mitre="T1619"),
    FleetRule("denied-10min", "denied", "role", "count", 600, 20.0,
              family="probe", mitre="T1580"),
    FleetRule("restore-1h", "restore", "role", "count", HOUR, 20.0,
              family="stage", mitre="T1074"),
    # KMS data-key releases (Decrypt, GenerateDataKey) per role and key, and per key
    # fleet-wide: ciphertext taken by any path is opened here. Learned (margin x the baseline
    # peak); a role or key with no decrypts in the baseline gets the stated minimum
    FleetRule("decrypt-1h", "decrypt", "role-bucket", "count", HOUR, 0.0, 120,
              family="volume", mitre="T1530"),
    FleetRule("decrypt-24h", "decrypt", "role-bucket", "count", DAY, 0.0, 600,
              family="volume", mitre="T1530"),
    FleetRule("fleet-decrypt-1h", "decrypt", "fleet-bucket", "count", HOUR, 0.0, 300,
              family="volume", mitre="T1530"),
    # novelty: fixed threshold 0 (any event alerts)
    FleetRule("copy-out", "copy-out", "role", "count", HOUR, 0.0, learned=False,
              family="copy", mitre="T1537"),
    # what leaves to a place the role never sent data to: a share of the bucket, fixed
    FleetRule("egress-7d", "egress", "role-bucket", "objects", 7 * DAY, 0.01, 10, True,
              learned=False, family="egress", mitre="T1567"),
    FleetRule("new-principal", "new-principal", "role", "count", DAY, 0.0, learned=False,
              family="novelty", mitre="T1078"),
    FleetRule("new-source", "new-source", "role", "count", HOUR, 0.0, learned=False,
              family="novelty", mitre="T1078.004"),
    FleetRule("new-action", "new-action", "role", "count", DAY, 0.0, learned=False,
              family="novelty", mitre="T1530"),
)

#: A (role, bucket) whose 24-hour share of the bucket reached this in the baseline reads the bulk
#: of it by design (training, a weekly re-extraction): it is left out of the fleet-wide sum.
BULK_SHARE = 0.5


@dataclass(frozen=True)
class FleetAlert:
    """One rule crossed by one group in one window."""

    rule: str
    family: str
    mitre: str
    principal: str  # the role/user, or "fleet" for fleet-wide rules
    scope: str  # the bucket, and the session for session rules
    window_start: dt.datetime
    alert_time: dt.datetime
    observed: float
    threshold: float

    @property
    def key(self) -> tuple[str, str, str, dt.datetime, dt.datetime]:
        """What identifies an alert (independent of arrival order)."""
        return (self.rule, self.principal, self.scope, self.window_start, self.alert_time)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["window_start"] = self.window_start.isoformat()
        out["alert_time"] = self.alert_time.isoformat()
        return out


# -- baseline -----------------------------------------------------------------------------------


@dataclass
class FleetBaseline:
    """What normal looks like, as data: thresholds per rule and group, sizes, known sources.

    Thresholds of relative rules are shares of the bucket (objects or prefixes per stored object
    or prefix; bytes per stored object); a group absent here gets the rule's floor.
    """

    rules: tuple[FleetRule, ...]
    margin: float
    thresholds: dict[str, dict[str, float]]
    sizes: dict[str, float]  # bucket -> objects
    prefix_counts: dict[str, float]  # bucket -> prefixes
    bulk: dict[str, list[str]]  # bucket -> roles left out of the fleet-wide sum
    principals: list[str]
    networks: dict[str, list[str]]
    agents: dict[str, list[str]]
    auths: dict[str, list[str]]
    actions: dict[str, list[str]]
    copy_destinations: list[str]
    events: int
    foreign_destinations: list[str] = field(default_factory=list)  # owned by another account
    #: bucket -> roles that read most of its fresh uploads in the baseline (the pipeline)
    fresh_readers: dict[str, list[str]] = field(default_factory=dict)
    #: bucket -> its typical object's bytes (the median successful GET/Select in the baseline):
    #: an object counts toward the bucket's size only when read with a share of that
    object_bytes: dict[str, float] = field(default_factory=dict)

    # -- (de)serialising --

    def to_json(self) -> str:
        body = asdict(self)
        body["rules"] = [asdict(r) for r in self.rules]
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FleetBaseline:
        body = json.loads(text)
        if not isinstance(body, dict) or set(body) != {f for f in cls.__dataclass_fields__}:
            raise InvalidParameterError("not a fleet baseline")
        body["rules"] = tuple(FleetRule(**r) for r in body["rules"])
        names = {r.name for r in body["rules"]}
        if set(body["thresholds"]) - names:
            raise InvalidParameterError("thresholds name rules the baseline does not have")
        return cls(**body)

    def table(self) -> list[dict[str, Any]]:
        """Rows (rule x group) for notebooks."""
        rows = []
        for rule in self.rules:
            for group, value in sorted(self.thresholds.get(rule.name, {}).items()):
                rows.append({"rule": rule.name, "group": group.replace("\x00", " | "),
                             "threshold": value,
                             "unit": "share of bucket" if rule.relative else rule.aggregate})
        return rows

    @classmethod
    def fit(cls, batch: EventBatch, vocab: Vocab, *, rules: Sequence[FleetRule] = FLEET_RULES,
            margin: float = 1.5) -> FleetBaseline:
        """Learn thresholds from normal traffic: each group's peak of each learned rule, times
        ``margin``, at least the rule's floor."""
        if len(batch) == 0:
            raise InvalidParameterError("a baseline needs traffic")
        if margin < 1.0:
            raise InvalidParameterError("margin must be >= 1")
        _check_rules(rules)
        batch = batch.take(np.argsort(batch.time_ms, kind="stable"))
        names = _Names(vocab)
        # what a role is known for (principals, sources, actions) comes from its S3 events;
        # its KMS decrypts are judged by the decrypt rules alone
        ok = ~batch.denied & (batch.kind != DECRYPT)
        roles = {names.principal(int(c)) for c in np.unique(batch.principal[ok])}
        sets: dict[str, dict[str, set[str]]] = {"networks": {}, "agents": {}, "auths": {},
                                                 "actions": {}}
        pairs = np.unique(np.stack([batch.principal[ok], batch.network[ok], batch.agent[ok],
                                    batch.auth[ok].astype(np.int32),
                                    batch.kind[ok].astype(np.int32)]), axis=1)
        for p, n, a, au, k in pairs.T:
            role = names.principal(int(p))
            sets["networks"].setdefault(role, set()).add(names.network(int(n)))
            sets["agents"].setdefault(role, set()).add(names.agent(int(a)))
            sets["auths"].setdefault(role, set()).add(_AUTH[int(au)])
            sets["actions"].setdefault(role, set()).add(KINDS[int(k)])
        copies = ok & (batch.kind == COPY)
        destinations = sorted({names.bucket(int(c)) for c in np.unique(batch.dest[copies])})
        foreign = sorted({names.bucket(int(c))
                          for c in np.unique(batch.dest[copies & batch.foreign])})
        # the typical object per bucket, then sizes: the largest 24-hour distinct objects and
        # prefixes per bucket (objects read with at least a share of the typical object)
        object_bytes: dict[str, float] = {}
        got = ok & ((batch.kind == GET) | (batch.kind == SELECT)) & (batch.bytes > 0)
        for code in np.unique(batch.bucket[got]):
            object_bytes[names.bucket(int(code))] = float(
                np.median(batch.bytes[got & (batch.bucket == code)]))
        engine = _Engine(rules, vocab, None)
        engine.object_bytes = object_bytes
        size_obj, size_pre = engine.sizes(batch)
        uploads = engine.uploads
        sizes: dict[str, float] = {}
        prefix_counts: dict[str, float] = {}
        for code in np.unique(batch.bucket):
            here = batch.bucket == code
            sizes[names.bucket(int(code))] = float(size_obj[here].max())
            prefix_counts[names.bucket(int(code))] = float(size_pre[here].max())
        base = cls(tuple(rules), margin, {}, sizes, prefix_counts, {}, sorted(roles),
                   {k: sorted(v) for k, v in sets["networks"].items()},
                   {k: sorted(v) for k, v in sets["agents"].items()},
                   {k: sorted(v) for k, v in sets["auths"].items()},
                   {k: sorted(v) for k, v in sets["actions"].items()},
                   destinations, len(batch), foreign, object_bytes=object_bytes)
        # the pipeline: roles that read at least FRESH_READER_SHARE of a bucket's uploads
        fresh = _Engine(rules, vocab, None).fresh(batch)
        writes = ok & (batch.kind == WRITE) & (batch.obj != 0)
        fresh_reads = ok & fresh & np.isin(batch.kind, _READ_CODES)
        for code in np.unique(batch.bucket[writes]):
            n_up = np.unique(batch.obj[writes & (batch.bucket == code)]).shape[0]
            here = fresh_reads & (batch.bucket == code)
            for p in np.unique(batch.principal[here]):
                read = np.unique(batch.obj[here & (batch.principal == p)]).shape[0]
                if read >= FRESH_READER_SHARE * n_up:
                    base.fresh_readers.setdefault(names.bucket(int(code)), []).append(
                        names.principal(int(p)))
        # bulk readers first (the fleet-wide rule leaves them out), then every learned rule
        share = FleetRule("bulk", "read", "role-bucket", "objects", DAY, 0.0, 0.0, True)
        peaks = _Engine((share,), vocab, base).peaks(batch, size_obj, size_pre, uploads)
        for key, value in peaks.get("bulk", {}).items():
            if value >= BULK_SHARE:
                role, bucket = key.split("\x00")
                base.bulk.setdefault(bucket, []).append(role)
        learned = [r for r in rules if r.learned]
        peaks = _Engine(learned, vocab, base).peaks(batch, size_obj, size_pre, uploads)
        bulk_keys = {f"{r}\x00{bk}" for bk, roles in base.bulk.items() for r in roles}
        for rule in learned:
            table = {}
            for key, value in sorted(peaks.get(rule.name, {}).items()):
                value = max(rule.floor, margin * value)
                if rule.cap is not None and key not in bulk_keys:
                    size = base.sizes.get(key.rsplit("\x00", 1)[-1], 0.0) or 1.0
                    cap = max(rule.cap, rule.cap_objects / size) if rule.relative else rule.cap
                    value = min(value, max(cap, rule.floor))
                table[key] = value
            base.thresholds[rule.name] = table
        return base


_AUTH = ("AuthHeader", "QueryString", "none")
_READ_CODES = np.array([GET, COPY, SELECT], np.int8)
#: A read of an object written this recently is the pipeline's flow, not the stored dataset...
FRESH_S = DAY
#: ...when the reader is a role that read at least this share of the bucket's uploads in the
#: baseline (the extractor, a backup); any other role's read of a fresh upload is a plain read.
FRESH_READER_SHARE = 0.5
#: An object counts toward its bucket's size (the denominator of every relative rule) only when
#: a successful GET or Select returned at least this share of the bucket's typical object
#: (:attr:`FleetBaseline.object_bytes`; :data:`DEFAULT_OBJECT_BYTES` for a bucket the baseline
#: never read). Empty or tiny objects, uploaded by the thousand, never make the dataset look
#: larger: to inflate it ten times an attacker must store and read back more than its bytes.
SIZE_MIN_SHARE = 0.125
DEFAULT_OBJECT_BYTES = 8192.0


def _check_rules(rules: Sequence[FleetRule]) -> None:
    if not rules:
        raise InvalidParameterError("at least one rule is needed")
    if len({r.name for r in rules}) != len(rules):
        raise InvalidParameterError("rule names must be unique")
    for rule in rules:
        if rule.window_s < 2 or rule.floor < 0 or rule.minimum < 0:
            raise InvalidParameterError(f"bad window or floor in {rule.name}")
        if rule.relative and rule.group == "role":
            raise InvalidParameterError(f"{rule.name}: a relative rule needs a bucket group")


class _Names:
    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self._cache: dict[str, list[str]] = {}

    def _get(self, table: str) -> list[str]:
        src: dict[str, int] = getattr(self.vocab, table)
        got = self._cache.get(table)
        if got is None or len(got) != len(src):
            got = self._cache[table] = Vocab.names(src)
        return got

    def principal(self, code: int) -> str:
        return self._get("principals")[code]

    def session(self, code: int) -> str:
        return self._get("sessions")[code].split("\x00", 1)[1]

    def bucket(self, code: int) -> str:
        return self._get("buckets")[code]

    def network(self, code: int) -> str:
        return self._get("networks")[code]

    def agent(self, code: int) -> str:
        return self._get("agents")[code]


# -- the windowed-aggregate engine ------------------------------------------------------------


_WID_BITS = 23
_WID_MASK = (1 << _WID_BITS) - 1
_MIX_A = np.uint64(0x9E3779B97F4A7C15)
_MIX_B = np.uint64(0xC2B2AE3D27D4EB4F)


@dataclass
class _Window:
    """State of one rule in one phase: open segments (group, window) and distinct items."""

    seg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    value: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    alerted: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    seen_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def evict(self, now_ms: int) -> None:
        keep = self.end > now_ms
        if not keep.all():
            self.seg, self.end = self.seg[keep], self.end[keep]
            self.value, self.alerted = self.value[keep], self.alerted[keep]
        keep = self.seen_end > now_ms
        if not keep.all():
            self.seen, self.seen_end = self.seen[keep], self.seen_end[keep]

    @property
    def entries(self) -> int:
        return int(self.seg.shape[0] + self.seen.shape[0])


def _first_of_each(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(h, return_index=True)``: the distinct values, sorted, and where each first
    occurs; by numpy's (SIMD) quicksort and the least position per run of equal values, about
    twice as fast as the stable sort ``np.unique`` needs for ``return_index``."""
    if h.shape[0] == 0:
        return h, np.zeros(0, np.intp)
    perm = np.argsort(h)
    sorted_h = h[perm]
    starts = np.flatnonzero(np.r_[True, sorted_h[1:] != sorted_h[:-1]])
    return sorted_h[starts], np.minimum.reduceat(perm, starts)


def _running(state: _Window, t: np.ndarray, group: np.ndarray, item: np.ndarray | None,
             weight: np.ndarray | None, window_ms: int, phase_ms: int,
             order: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The running aggregate at each event (events time-ordered), carried across calls.

    ``order``, if given, is a stable sort of the events by ``group``: inside a group the events
    are in time order, so each window's events are contiguous in it whatever the window and
    phase (one sort serves every rule over the same events and groups).
    Returns (order, running value in that order, segment index per event in that order, the
    chunk's unique segments' positions in the state)."""
    wid = (t + phase_ms) // window_ms
    seg = (group << _WID_BITS) | (wid & _WID_MASK)
    if order is None:
        order = np.argsort(group, kind="stable")
    s_seg = seg[order]
    n = s_seg.shape[0]
    if item is not None:
        h = (s_seg.astype(np.uint64) * _MIX_A) ^ (item[order].astype(np.uint64) * _MIX_B)
        fresh, first = _first_of_each(h)
        w = np.zeros(n, np.float64)
        if state.seen.shape[0]:
            pos = np.searchsorted(state.seen, fresh)
            pos[pos >= state.seen.shape[0]] = 0
            fresh_mask = state.seen[pos] != fresh
        else:
            fresh_mask = np.ones(first.shape[0], bool)
        w[first[fresh_mask]] = 1.0
        ends = ((wid[order][first[fresh_mask]] + 1) * window_ms - phase_ms).astype(np.int64)
        new_h = h[first[fresh_mask]]
        merged = np.concatenate([state.seen, new_h])
        merged_end = np.concatenate([state.seen_end, ends])
        o = np.argsort(merged, kind="stable")
        state.seen, state.seen_end = merged[o], merged_end[o]
    else:
        w = np.ones(n, np.float64) if weight is None else weight[order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, s_seg[1:] != s_seg[:-1]])
    useg = s_seg[starts]
    seg_of = np.repeat(np.arange(starts.shape[0]), np.diff(np.r_[starts, n]))
    csum = np.cumsum(w)
    before = np.r_[0.0, csum][starts]
    # carried values
    if state.seg.shape[0]:
        pos_c = np.minimum(np.searchsorted(state.seg, useg), state.seg.shape[0] - 1)
        found = state.seg[pos_c] == useg
        carried = np.where(found, state.value[pos_c], 0.0)
    else:
        pos_c = np.zeros(useg.shape[0], np.int64)
        found = np.zeros(useg.shape[0], bool)
        carried = np.zeros(useg.shape[0], np.float64)
    running = csum - before[seg_of] + carried[seg_of]
    # store the new totals
    last = np.r_[starts[1:], n] - 1
    totals = running[last]
    wid_u = wid[order][starts]
    ends_u = ((wid_u + 1) * window_ms - phase_ms).astype(np.int64)
    if found.any():
        state.value[pos_c[found]] = totals[found]
    if (~found).any():
        nf = ~found
        seg2 = np.concatenate([state.seg, useg[nf]])
        o = np.argsort(seg2, kind="stable")
        state.seg = seg2[o]
        state.end = np.concatenate([state.end, ends_u[nf]])[o]
        state.value = np.concatenate([state.value, totals[nf]])[o]
        state.alerted = np.concatenate([state.alerted, np.zeros(int(nf.sum()), bool)])[o]
    slot = np.searchsorted(state.seg, useg)
    return order, running, seg_of, slot


class _Engine:
    """Runs rules over time-ordered batches, carrying window state between batches."""

    def __init__(self, rules: Sequence[FleetRule], vocab: Vocab,
                 baseline: FleetBaseline | None) -> None:
        self.rules = tuple(rules)
        self.vocab = vocab
        self.names = _Names(vocab)
        self.baseline = baseline
        self.windows: dict[tuple[int, int], _Window] = {}
        self.size_windows: dict[tuple[str, int], _Window] = {}
        self.last_alert: dict[tuple[str, int], int] = {}
        self.last_day: dict[tuple[str, str, int], int] = {}
        # per batch: the events each (filter, group) selects, and their order by group
        self._selections: dict[tuple[str, str, bool, bool], np.ndarray] = {}
        self._orders: dict[tuple[str, str, bool, bool],
                           tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # objects written in the last FRESH_S (object hash, write time), for :meth:`fresh`
        self.written_obj = np.zeros(0, np.int64)
        self.written_t = np.zeros(0, np.int64)
        self._fresh = np.zeros(0, bool)
        self.uploads = np.zeros(0, np.float64)
        self.object_bytes: dict[str, float] = dict(baseline.object_bytes) if baseline else {}
        # per rule: its thresholds as a dense table, for the vocabulary sizes it was made for
        self._dense: dict[str, tuple[int, int, dict[str, float], np.ndarray]] = {}

    # -- fresh objects --

    def fresh(self, b: EventBatch) -> np.ndarray:
        """Per event: a read of an object written (successfully) in the FRESH_S before it, or
        at the same time. Those are the pipeline's flow (the extractor reading each upload, a
        backup copying the day's recordings), not the stored dataset; volume, share and spread
        rules leave them out (egress and copy-out rules do not). State: the writes of the last
        FRESH_S, carried across batches."""
        w = ~b.denied & (b.kind == WRITE) & (b.obj != 0)
        objs = np.concatenate([self.written_obj, b.obj[w]])
        times = np.concatenate([self.written_t, b.time_ms[w]])
        out = np.zeros(len(b), bool)
        if len(b):
            # twice the horizon: a read may arrive late (the reorder buffer's lag) and still
            # need the write before it
            keep = times >= int(b.time_ms.max()) - 2 * FRESH_S * 1000
            self.written_obj, self.written_t = objs[keep], times[keep]
        if objs.shape[0] == 0:
            return out
        reads = np.flatnonzero(~b.denied & np.isin(b.kind, _READ_CODES) & (b.obj != 0))
        if reads.shape[0] == 0:
            return out
        # the latest write of the same object at or before each read: rank objects, then
        # search (rank, time) pairs as one sorted int64 key (times are < 2**42 ms)
        uniq = np.unique(objs)
        r_obj = b.obj[reads]
        pos = np.minimum(np.searchsorted(uniq, r_obj), uniq.shape[0] - 1)
        known = uniq[pos] == r_obj
        key_w = (np.searchsorted(uniq, objs).astype(np.int64) << 42) | times
        key_w.sort()
        key_r = (pos.astype(np.int64) << 42) | b.time_ms[reads]
        at = np.searchsorted(key_w, key_r, side="right") - 1
        hit = known & (at >= 0)
        prev = key_w[np.maximum(at, 0)]
        same = (prev >> 42) == pos
        t_w = prev & ((1 << 42) - 1)
        # a read naming a versionId may read an older version than the one just written
        out[reads] = hit & same & (b.time_ms[reads] - t_w < FRESH_S * 1000) & ~b.versioned[reads]
        return out

    # -- sizes --

    def sizes(self, b: EventBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per event: distinct objects and prefixes of its bucket successfully read in the
        24-hour windows (both phases) containing it, counting only reads of at least
        :data:`SIZE_MIN_SHARE` of the bucket's typical object (0 for events that touch no
        object; one marker item per window for the others). Also
        sets :attr:`uploads`: per read, the distinct objects written to its bucket in those
        windows up to it."""
        out_o = np.zeros(len(b), np.float64)
        out_p = np.zeros(len(b), np.float64)
        self.uploads = np.zeros(len(b), np.float64)
        idx = np.flatnonzero(~b.denied & (b.obj != 0))
        if idx.shape[0] == 0:
            return out_o, out_p
        t = b.time_ms[idx]
        g = b.bucket[idx].astype(np.int64)
        w = SIZE_WINDOW_S * 1000
        # writes count by object; every other event by one shared marker item (0, never an
        # object's hash), counted once per window and taken off below
        written = np.where(b.kind[idx] == WRITE, b.obj[idx], 0)
        # the dataset's objects and prefixes: those read with a share of the typical object's
        # bytes (any other event is the marker item 0, one per window, as for writes)
        names = Vocab.names(self.vocab.buckets)
        floor = np.array([self.object_bytes.get(n, DEFAULT_OBJECT_BYTES) * SIZE_MIN_SHARE
                          for n in names] or [0.0])
        kind = b.kind[idx]
        counted = (((kind == GET) | (kind == SELECT))
                   & (b.bytes[idx] >= floor[b.bucket[idx]]))
        for what, items, out in (("obj", np.where(counted, b.obj[idx], 0), out_o),
                                 ("pre", np.where(counted, b.prefix[idx], 0), out_p),
                                 ("up", written, self.uploads)):
            for phase in (0, w // 2):
                state = self.size_windows.setdefault((what, phase), _Window())
                order, running, _, _ = _running(state, t, g, items, None, w, phase)
                vals = np.empty_like(running)
                vals[order] = running
                np.maximum.at(out, idx, vals)
        reads = b.kind[idx] != WRITE
        self.uploads[idx[reads]] -= 1.0
        return out_o, out_p

    # -- masks and groups --

    def _mask(self, rule: FleetRule, b: EventBatch) -> np.ndarray:
        ok = ~b.denied
        kind = b.kind
        if rule.filter in ("read", "fresh"):
            fresh = self._fresh if self._fresh.shape[0] == len(b) else self.fresh(b)
            flow = fresh & self._fresh_reader(b)
            reads = ok & ((kind == GET) | (kind == COPY) | (kind == SELECT))
            return reads & (flow if rule.filter == "fresh" else ~flow)
        if rule.filter == "probe":
            return ok & ((kind == HEAD) | (kind == LIST))
        if rule.filter == "denied":
            return b.denied.copy()
        if rule.filter == "restore":
            return ok & (kind == RESTORE)
        if rule.filter == "decrypt":
            return ok & (kind == DECRYPT)
        base = self.baseline
        if base is None:
            raise InvalidParameterError(f"{rule.name} needs a baseline")
        if rule.filter == "copy-out":
            # a destination never copied to in the baseline, or now owned by another account
            # when it was not in the baseline (a DR account's bucket stays allowed)
            known = self._codes("buckets", base.copy_destinations)
            known_foreign = self._codes("buckets", base.foreign_destinations)
            return ok & (kind == COPY) & (~np.isin(b.dest, known)
                                          | (b.foreign & ~np.isin(b.dest, known_foreign)))
        if rule.filter == "egress":
            # data going to a network the role never read from: each (role, VPC endpoint id),
            # address block, or AWS itself as in the baseline. Another endpoint is another
            # network (anyone can create one), and an endpoint another account owns is never
            # familiar (``vpce-foreign:``, from ``vpcEndpointAccountId``)
            familiar = self._pair_known(b.principal, b.network, "networks", base.networks)
            foreign = np.array([c for n, c in self.vocab.networks.items()
                                if n.startswith("vpce-foreign:")], np.int64)
            familiar &= ~np.isin(b.network, foreign)
            return ok & np.isin(kind, _READ_CODES) & ~familiar
        known_p = np.isin(b.principal, self._codes("principals", base.principals))
        ok = ok & (kind != DECRYPT)  # novelty is judged on S3 events
        if rule.filter == "new-principal":
            return ok & ~known_p
        if rule.filter == "new-source":
            # a source new *for a role the baseline knows*; for an unknown principal every
            # source is new, and that is one piece of news (new-principal), not two
            novel = (~self._pair_known(b.principal, b.network, "networks", base.networks)
                     ).astype(np.int8)
            novel += ~self._pair_known(b.principal, b.agent, "agents", base.agents)
            novel += ~self._pair_known(b.principal, b.auth.astype(np.int32), None, base.auths)
            return ok & known_p & (novel >= 2) & (kind != WRITE)
        if rule.filter == "new-action":
            # a new way of *reading* (a HEAD or a listing new for a role reads nothing: the
            # probe rules count those)
            acts = np.zeros(len(b), bool)
            for k in (GET, COPY, SELECT, RESTORE):
                acts |= (kind == k) & ~self._role_has(b.principal, base.actions, KINDS[k])
            return ok & known_p & acts
        raise InvalidParameterError(f"unknown filter {rule.filter!r}")

    def _fresh_reader(self, b: EventBatch) -> np.ndarray:
        """Per event: its role reads the bucket's fresh uploads by design (in the baseline)."""
        base = self.baseline
        if base is None or not base.fresh_readers:
            return np.zeros(len(b), bool)
        pb = self.vocab.buckets
        keys = [(self.vocab.principals[r] << 20) | pb[bk]
                for bk, roles in base.fresh_readers.items() if bk in pb
                for r in roles if r in self.vocab.principals]
        query = (b.principal.astype(np.int64) << 20) | b.bucket.astype(np.int64)
        return np.isin(query, np.array(keys, np.int64))

    def _codes(self, table: str, names: Iterable[str]) -> np.ndarray:
        src: dict[str, int] = getattr(self.vocab, table)
        return np.array([src[n] for n in names if n in src], np.int64)

    def _role_has(self, principal: np.ndarray, sets: dict[str, list[str]],
                  value: str) -> np.ndarray:
        roles = [r for r, vals in sets.items() if value in vals]
        return np.isin(principal, self._codes("principals", roles))

    def _pair_known(self, principal: np.ndarray, attr: np.ndarray, table: str | None,
                    sets: dict[str, list[str]]) -> np.ndarray:
        pcodes = self.vocab.principals
        vals: dict[str, int] = getattr(self.vocab, table) if table else {
            a: i for i, a in enumerate(_AUTH)}
        keys = [(pcodes[r] << 32) | vals[v] for r, vs in sets.items() if r in pcodes
                for v in vs if v in vals]
        query = (principal.astype(np.int64) << 32) | attr.astype(np.int64)
        return np.isin(query, np.array(keys, np.int64))

    def _group(self, rule: FleetRule, b: EventBatch, idx: np.ndarray) -> np.ndarray:
        if rule.group == "role":
            return b.principal[idx].astype(np.int64)
        bucket = b.bucket[idx].astype(np.int64)
        if rule.group == "role-bucket":
            return (b.principal[idx].astype(np.int64) << 20) | bucket
        if rule.group == "session-bucket":
            return (b.session[idx].astype(np.int64) << 20) | bucket
        return bucket

    def _fleet_mask(self, b: EventBatch) -> np.ndarray:
        base = self.baseline
        if base is None or not base.bulk:
            return np.ones(len(b), bool)
        pb = self.vocab.buckets
        keys = [(self.vocab.principals[r] << 20) | pb[bk] for bk, roles in base.bulk.items()
                if bk in pb for r in roles if r in self.vocab.principals]
        query = (b.principal.astype(np.int64) << 20) | b.bucket.astype(np.int64)
        return ~np.isin(query, np.array(keys, np.int64))

    def _threshold_key(self, rule: FleetRule, p: int, bk: int) -> str:
        if rule.group == "role":
            return self.names.principal(p)
        if rule.group == "fleet-bucket":
            return self.names.bucket(bk)
        return f"{self.names.principal(p)}\x00{self.names.bucket(bk)}"

    def _share(self, rule: FleetRule, b: EventBatch, idx: np.ndarray, size_o: np.ndarray,
               size_p: np.ndarray) -> np.ndarray:
        """The denominator per event: the bucket's size now (objects, or prefixes); for the
        pipeline's fresh reads, the uploads to the bucket in the 24-hour windows containing the
        read (the flow is bounded by the upload rate, whatever that rate)."""
        if rule.filter == "fresh":
            return np.maximum(self.uploads[idx], 1.0)
        base = self.baseline
        sizes = size_p if rule.aggregate == "prefixes" else size_o
        table = (base.prefix_counts if rule.aggregate == "prefixes" else base.sizes) if base \
            else {}
        names = Vocab.names(self.vocab.buckets)
        known = np.array([table.get(n, 0.0) for n in names] or [0.0])
        return np.maximum(np.maximum(known[b.bucket[idx]], sizes[idx]), 1.0)

    def _values(self, rule: FleetRule, b: EventBatch, idx: np.ndarray, phase: int,
                r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, _Window]:
        """Running aggregate per selected event; returns (events in sorted order, values,
        segment of each, segment slots, state)."""
        state = self.windows.setdefault((r, phase), _Window())
        item = None
        weight = None
        if rule.aggregate == "objects":
            item = b.obj[idx]
        elif rule.aggregate == "prefixes":
            item = b.prefix[idx]
        elif rule.aggregate == "bytes":
            weight = b.bytes[idx]
        cache_key = (rule.filter, rule.group, rule.aggregate in ("objects", "prefixes"),
                     rule.bulk_exempt)
        cached = self._orders.get(cache_key)
        if cached is None or cached[0] is not idx:
            group = self._group(rule, b, idx)
            cached = self._orders[cache_key] = (idx, group,
                                                np.argsort(group, kind="stable"))
        order, running, seg_of, slot = _running(
            state, b.time_ms[idx], cached[1], item, weight, rule.window_ms, phase, cached[2])
        return idx[order], running, seg_of, slot, state

    def _selected(self, rule: FleetRule, b: EventBatch) -> np.ndarray:
        key = (rule.filter, rule.group, rule.aggregate in ("objects", "prefixes"),
               rule.bulk_exempt)
        got = self._selections.get(key)
        if got is not None:
            return got
        got = self._selections[key] = self._select(rule, b)
        return got

    def _select(self, rule: FleetRule, b: EventBatch) -> np.ndarray:
        mask = self._mask(rule, b)
        if rule.group == "fleet-bucket" or rule.bulk_exempt:
            mask &= self._fleet_mask(b)
        if rule.aggregate in ("objects", "prefixes"):
            mask &= b.obj != 0
        return np.flatnonzero(mask)

    # -- fitting --

    def peaks(self, b: EventBatch, size_o: np.ndarray, size_p: np.ndarray,
              uploads: np.ndarray) -> dict[str, dict[str, float]]:
        self.uploads = uploads
        self._selections, self._orders = {}, {}
        self._fresh = self.fresh(b)
        out: dict[str, dict[str, float]] = {}
        for r, rule in enumerate(self.rules):
            idx = self._selected(rule, b)
            if idx.shape[0] == 0:
                continue
            best: dict[str, float] = out.setdefault(rule.name, {})
            for phase in (0, rule.window_ms // 2):
                ev, running, _, _, _ = self._values(rule, b, idx, phase, r)
                if rule.relative:
                    running = running / self._share(rule, b, ev, size_o, size_p)
                gp = (b.principal[ev].astype(np.int64) << 20) | b.bucket[ev]
                if rule.group == "role":
                    gp = b.principal[ev].astype(np.int64) << 20
                elif rule.group == "fleet-bucket":
                    gp = b.bucket[ev].astype(np.int64)
                keys, inv = np.unique(gp, return_inverse=True)
                top = np.full(keys.shape[0], -np.inf)
                np.maximum.at(top, inv, running)
                for k, v in zip(keys, top, strict=True):
                    name = self._threshold_key(rule, int(k) >> 20, int(k) & 0xFFFFF)
                    best[name] = max(best.get(name, 0.0), float(v))
        return out

    # -- detecting --

    def detect(self, b: EventBatch) -> list[FleetAlert]:
        """Evaluate one time-ordered batch after everything fed before; returns its alerts."""
        base = self.baseline
        assert base is not None
        self._selections, self._orders = {}, {}
        self._fresh = self.fresh(b)
        size_o, size_p = self.sizes(b)
        candidates: list[tuple[int, int, int, float, float, int]] = []
        for r, rule in enumerate(self.rules):
            idx = self._selected(rule, b)
            if idx.shape[0] == 0:
                continue
            thr_table = base.thresholds.get(rule.name, {})
            for phase in (0, rule.window_ms // 2):
                ev, running, seg_of, slot, state = self._values(rule, b, idx, phase, r)
                thr = self._thresholds(rule, b, ev, thr_table, size_o, size_p)
                over = running > thr
                if not over.any():
                    continue
                hits = np.flatnonzero(over)
                segs = seg_of[hits]
                firsts = hits[np.r_[True, segs[1:] != segs[:-1]]]
                for i in firsts:
                    s = int(slot[seg_of[i]])
                    if state.alerted[s]:
                        continue
                    state.alerted[s] = True
                    e = int(ev[i])
                    start = int(state.end[s]) - rule.window_ms
                    candidates.append((int(b.time_ms[e]), r, e, float(running[i]),
                                       float(thr[i]), start))
        candidates.sort(key=lambda c: (c[0], c[1], c[5]))
        alerts = []
        for when, r, e, value, threshold, start in candidates:
            rule = self.rules[r]
            group = int(self._group(rule, b, np.array([e]))[0])
            last = self.last_alert.get((rule.name, group))
            if last is not None and start < last:
                continue  # the other phase's window of the same episode
            self.last_alert[(rule.name, group)] = start + rule.window_ms
            day = when // (DAY * 1000)
            family = (rule.family or rule.name, rule.group, group)
            if self.last_day.get(family) == day:
                continue  # one alert per rule family and group per UTC day: the rest join it
            self.last_day[family] = day
            alerts.append(self._alert(rule, b, e, when, start, value, threshold))
        return alerts

    def _thresholds(self, rule: FleetRule, b: EventBatch, ev: np.ndarray,
                    table: dict[str, float], size_o: np.ndarray, size_p: np.ndarray
                    ) -> np.ndarray:
        if not rule.learned:
            base = np.full(ev.shape[0], rule.floor)
        else:
            n_p, n_b = len(self.vocab.principals), len(self.vocab.buckets)
            cached = self._dense.get(rule.name)
            if cached is None or cached[:3] != (n_p, n_b, table) or cached[2] is not table:
                cached = self._dense[rule.name] = (n_p, n_b, table,
                                                   self._dense_table(rule, table, n_p, n_b))
            base = cached[3][b.principal[ev], b.bucket[ev]]
        if rule.relative:
            return np.maximum(rule.minimum, base * self._share(rule, b, ev, size_o, size_p))
        return np.maximum(rule.minimum, base)

    def _dense_table(self, rule: FleetRule, table: dict[str, float], n_p: int,
                     n_b: int) -> np.ndarray:
        """A rule's thresholds as a dense (principal x bucket) table: both vocabularies are
        small. Kept while the vocabularies do not grow (every batch, once they are known)."""
        dense = np.full((n_p, n_b), rule.floor)
        for key, value in table.items():
            if rule.group == "role":
                code = self.vocab.principals.get(key)
                if code is not None:
                    dense[code, :] = value
            elif rule.group == "fleet-bucket":
                code = self.vocab.buckets.get(key)
                if code is not None:
                    dense[:, code] = value
            else:
                role, bucket = key.split("\x00", 1)
                pc, bc = self.vocab.principals.get(role), self.vocab.buckets.get(bucket)
                if pc is not None and bc is not None:
                    dense[pc, bc] = value
        return dense

    def _alert(self, rule: FleetRule, b: EventBatch, e: int, when: int, start: int,
               value: float, threshold: float) -> FleetAlert:
        names = self.names
        bucket = names.bucket(int(b.bucket[e]))
        principal = "fleet" if rule.group == "fleet-bucket" else names.principal(
            int(b.principal[e]))
        scope = bucket if rule.group != "role" else "-"
        if rule.group == "session-bucket":
            scope = f"{bucket} session={names.session(int(b.session[e]))}"
        return FleetAlert(rule.name, rule.family, rule.mitre, principal, scope, _dt(start),
                          _dt(when), value, threshold)

    def evict(self, now_ms: int) -> None:
        for state in (*self.windows.values(), *self.size_windows.values()):
            state.evict(now_ms)

    @property
    def entries(self) -> int:
        return (sum(s.entries for s in (*self.windows.values(), *self.size_windows.values()))
                + int(self.written_obj.shape[0]))


# -- the stream ---------------------------------------------------------------------------------


class FleetDetector:
    """Streams batches through a reorder buffer into the engine.

    ``lag_s``: how late an event may arrive (relative to the newest one seen) and still be
    evaluated in time order; CloudTrail delivers within about 5 minutes, typically. Events later
    than that are still evaluated, in the next batch, and counted in :attr:`late`. ``min_batch``
    buffers that many events before evaluating (fewer, larger numpy passes when reading files);
    alerts do not depend on it.
    """

    def __init__(self, baseline: FleetBaseline, vocab: Vocab, *, lag_s: int = 300,
                 min_batch: int = 0) -> None:
        if lag_s < 0 or min_batch < 0:
            raise InvalidParameterError("lag_s and min_batch must be >= 0")
        self.min_batch = min_batch
        self.baseline = baseline
        self.vocab = vocab
        self.lag_ms = lag_s * 1000
        self.engine = _Engine(baseline.rules, vocab, baseline)
        self.alerts: list[FleetAlert] = []
        self.events = 0
        self.late = 0
        self._pending: list[EventBatch] = []
        self._pending_n = 0
        self._newest = -(1 << 62)
        self._released = -(1 << 62)

    def feed(self, batch: EventBatch) -> list[FleetAlert]:
        """Add events (any order within the lag); returns alerts raised by what was released."""
        if len(batch) == 0:
            return []
        self.events += len(batch)
        self.late += int((batch.time_ms < self._released).sum())
        self._pending.append(batch)
        self._pending_n += len(batch)
        self._newest = max(self._newest, int(batch.time_ms.max()))
        if self._pending_n < self.min_batch:
            return []
        return self._release(self._newest - self.lag_ms)

    def flush(self) -> list[FleetAlert]:
        """Evaluate everything still buffered (end of the stream)."""
        return self._release(1 << 62)

    def _release(self, watermark: int) -> list[FleetAlert]:
        if not self._pending:
            return []
        pending = EventBatch.concat(self._pending)
        ready = pending.time_ms < watermark
        if not ready.any():
            self._pending = [pending]
            return []
        rest = np.flatnonzero(~ready)
        self._pending = [pending.take(rest)] if rest.shape[0] else []
        self._pending_n = int(rest.shape[0])
        go = pending.take(np.flatnonzero(ready))
        go = go.take(np.argsort(go.time_ms, kind="stable"))
        self._released = max(self._released, min(watermark, int(go.time_ms.max()) + 1))
        alerts = self.engine.detect(go)
        self.engine.evict(int(go.time_ms.max()))
        self.alerts.extend(alerts)
        return alerts

    @property
    def state_entries(self) -> int:
        """Open (group, window) aggregates plus distinct items held: the detector's memory."""
        return self.engine.entries + self._pending_n


def detect_fleet(batch: EventBatch, vocab: Vocab, baseline: FleetBaseline) -> list[FleetAlert]:
    """All alerts of one batch (any order): the stream, fed at once."""
    det = FleetDetector(baseline, vocab)
    det.feed(batch)
    det.flush()
    return det.alerts


def with_rules(baseline: FleetBaseline, rules: Sequence[FleetRule]) -> FleetBaseline:
    """The baseline restricted to ``rules`` (for one rule's evaluation, or a lesson)."""
    names = {r.name for r in rules}
    return replace(baseline, rules=tuple(rules),
                   thresholds={k: v for k, v in baseline.thresholds.items() if k in names})


def _dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


__all__ = ["BULK_SHARE", "FLEET_RULES", "FleetAlert", "FleetBaseline", "FleetDetector",
           "FleetRule", "detect_fleet", "empty_batch", "with_rules"]
