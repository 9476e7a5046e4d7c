"""Step 5: retention that is enforced. Lifecycle rules applied and verified, plus a sweeper.

The common pattern is one lifecycle rule: "move ``raw-samples/`` to Glacier after 30 days, delete
after a year". Four things are wrong with it for voice data:

* its prefix (``raw-samples/``) is not where the data is, so it matches nothing; a check that
  only asks "is there an enabled rule?" (Prowler's ``s3_bucket_lifecycle_enabled``) passes;
* in a versioned bucket an expiration only adds a delete marker: without
  ``NoncurrentVersionExpiration`` every old version stays, readable by version id, for ever;
* a transition is not retention: it changes the price, not the exposure. And objects under
  128 KB are not transitioned by default (a 3 s, 16 kHz, 16-bit mono WAV is about 96 KB; an
  encrypted feature matrix is smaller still);
* one year for every speaker is not what anyone consented to: BIPA requires destruction when the
  purpose is satisfied or within 3 years of the last interaction, whichever comes first, and a
  withdrawal (GDPR Art. 17) cannot wait for a bucket-wide timer.

What this module does:

* :func:`lifecycle_rules` builds rules per bucket role: ``raw/`` expires after days, features
  expire after the longest consent term (capped at 3 years), the archive goes to an archival
  class at day 0 with a hard expiration cap, noncurrent versions and expired delete markers go,
  incomplete multipart uploads are aborted. :func:`apply_lifecycle` merges them by rule ID
  into the bucket's configuration (PutBucketLifecycleConfiguration).
* :func:`inspect_lifecycle` reads any bucket's rules and returns
  :class:`~securepipe.encryption.hardening.Finding` objects, catching a rule that never expires
  anything
  (disabled, transitions only, or a filter that matches none of the data) and a missing
  noncurrent-version expiry.
* :func:`sweep` enforces each speaker's *own* retention date. Lifecycle rules count days from
  each object's creation and know nothing about consent, so they are the coarse backstop; the
  sweeper is the precise control. It also stands in for lifecycle in the sandbox, where moto
  stores rules but never applies them (gap ``s3-lifecycle`` in :mod:`securepipe.sandbox.gaps`).

**Attributing objects to speakers.** Every object version is attributed from its own record, in
this order: the ``securepipe-speaker`` object metadata (written by ingest on features and archive
copies; metadata is part of the version, so it cannot be changed without writing a new version),
else the manifest mapping ``sample_id -> speaker`` applied to the sample id in the object key
(``<prefix>/<contractor>/<sample_id>[/...]``); raw uploads and quarantined uploads are written by
contractors, who never see speaker ids, so they are attributed this way. A delete marker is
attributed by its key (the mapping, or the speaker of the key's other versions). Metadata and
mapping that disagree are reported as a conflict and never acted on; so is an object with no
attribution, or a speaker with no consent record: the sweeper never deletes on a guess, and never
keeps silently.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from securepipe import clock as _clock
from securepipe.clients import shared_client
from securepipe.encryption.hardening import Finding
from securepipe.errors import InvalidParameterError
from securepipe.ids import check_session, validate_bucket_name
from securepipe.merge import merge_lifecycle_rules
from securepipe.retention.consent import BIPA_MAX_DAYS, ConsentRegistry

__all__ = [
    "ABORT_MULTIPART_DAYS",
    "ARCHIVAL_CLASSES",
    "BIPA_MAX_DAYS",
    "DATA_PREFIXES",
    "IA_MIN_DAYS",
    "LIFECYCLE_CONTROLS",
    "META_SPEAKER",
    "NONCURRENT_DAYS",
    "RAW_EXPIRY_DAYS",
    "SMALL_OBJECT_BYTES",
    "apply_lifecycle",
    "features_expiration_days",
    "inspect_lifecycle",
    "lifecycle_rules",
]


AUDIT = logging.getLogger("securepipe.audit.records")


#: Object metadata naming the speaker (same value as
# :data:`securepipe.features.ingest.META_SPEAKER`).
META_SPEAKER = "securepipe-speaker"


#: Raw uploads are ingested within minutes; whatever is left after this many days goes.
RAW_EXPIRY_DAYS = 7


#: Quarantined uploads are kept this long for investigation.
QUARANTINE_EXPIRY_DAYS = 30


#: Noncurrent versions (what a DELETE or an expiration leaves behind) go after this many days.
NONCURRENT_DAYS = 1


ABORT_MULTIPART_DAYS = 1


#: Lifecycle does not transition objects smaller than this by default.
SMALL_OBJECT_BYTES = 128 * 1024


#: Minimum age (days) for a transition to Standard-IA or One Zone-IA.
IA_MIN_DAYS = 30


ARCHIVAL_CLASSES = ("GLACIER", "DEEP_ARCHIVE")


LIFECYCLE_CONTROLS: tuple[str, ...] = (
    "lifecycle-configured", "lifecycle-rule", "lifecycle-expires-data",
    "lifecycle-noncurrent-expiry", "lifecycle-abort-multipart", "lifecycle-transitions",
)


Role = Literal["raw", "features", "archive"]


#: Where the kit keeps data in each bucket role (pass to :func:`inspect_lifecycle`).
DATA_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "raw": ("raw/", "quarantine/"), "features": ("features/",), "archive": ("archive/",),
}


_IA_CLASSES = ("STANDARD_IA", "ONEZONE_IA")


_SMALL_OBJECT_NOTE = (
    "objects under 128 KB are not transitioned by default (a 3 s, 16 kHz, 16-bit mono WAV is "
    "about 96 KB; encrypted feature matrices are smaller), so they stay in their class; "
    "Standard-IA and One Zone-IA need objects at least 30 days old; Glacier Flexible Retrieval "
    "bills at least 90 days. A transition changes the price, never the exposure: only an "
    "expiration deletes")


def _check_days(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameterError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def features_expiration_days(term_days: Iterable[int]) -> int:
    """The features rule's expiration: the longest consent term, capped at 1,095 days (BIPA)."""
    terms = [_check_days("term_days", t, 1, 100_000) for t in term_days]
    if not terms:
        raise InvalidParameterError("at least one consent term is needed")
    return min(max(terms), BIPA_MAX_DAYS)


def lifecycle_rules(
    role: Role,
    *,
    max_term_days: int = BIPA_MAX_DAYS,
    raw_days: int = RAW_EXPIRY_DAYS,
    quarantine_days: int = QUARANTINE_EXPIRY_DAYS,
    archive_class: str = "DEEP_ARCHIVE",
    archive_cap_days: int = BIPA_MAX_DAYS,
    noncurrent_days: int = NONCURRENT_DAYS,
) -> list[dict[str, Any]]:
    """Lifecycle rules for one of the kit's buckets (``raw``, ``features`` or ``archive``).

    Every bucket gets a ``housekeeping`` rule over the whole bucket: noncurrent versions expire
    after ``noncurrent_days``, expired delete markers are removed, incomplete multipart uploads
    are aborted after a day. Then, by role:

    * ``raw``: ``raw/`` expires after ``raw_days``, ``quarantine/`` after ``quarantine_days``;
    * ``features``: ``features/`` expires after ``max_term_days`` (use
      :func:`features_expiration_days`), capped at 1,095 days;
    * ``archive``: ``archive/`` transitions to ``archive_class`` (GLACIER or DEEP_ARCHIVE) at day
      0 and expires after ``archive_cap_days`` (at most 1,095). Versions under Object Lock
      (legal hold or retention) are not removed by lifecycle until the lock ends.

    Rule format: https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-rules.html
    """
    if role not in DATA_PREFIXES:
        raise InvalidParameterError(f"role must be raw, features or archive, got {role!r}")
    _check_days("noncurrent_days", noncurrent_days, 1, 365)
    rules: list[dict[str, Any]] = [{
        "ID": "housekeeping",
        "Status": "Enabled",
        "Filter": {},
        "Expiration": {"ExpiredObjectDeleteMarker": True},
        "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
    }]
    if role == "raw":
        rules.append(_expire("raw-uploads", "raw/", _check_days("raw_days", raw_days, 1, 90)))
        rules.append(_expire("quarantine", "quarantine/",
                             _check_days("quarantine_days", quarantine_days, 1, 365)))
    elif role == "features":
        days = min(_check_days("max_term_days", max_term_days, 1, 100_000), BIPA_MAX_DAYS)
        rules.append(_expire("features-consent-term", "features/", days))
    else:
        if archive_class not in ARCHIVAL_CLASSES:
            raise InvalidParameterError(f"archive_class must be one of {ARCHIVAL_CLASSES}")
        rule = _expire("archive-cap", "archive/",
                       _check_days("archive_cap_days", archive_cap_days, 1, BIPA_MAX_DAYS))
        rule["Transitions"] = [{"Days": 0, "StorageClass": archive_class}]
        rules.append(rule)
    return rules


def _expire(rule_id: str, prefix: str, days: int) -> dict[str, Any]:
    return {"ID": rule_id, "Status": "Enabled", "Filter": {"Prefix": prefix},
            "Expiration": {"Days": days}}


def apply_lifecycle(session: boto3.Session, bucket: str, rules: Sequence[Mapping[str, Any]],
                    *, replace: bool = False) -> None:
    """Merge ``rules`` into the bucket's lifecycle configuration by rule ``ID``.

    A rule with the same ``ID`` is replaced in place; every other rule is kept
    (:func:`securepipe.merge.merge_lifecycle_rules`), so re-running is safe. ``replace=True``
    makes the configuration exactly ``rules`` (e.g. to retire a rule that never expired
    anything). Wraps GetBucketLifecycleConfiguration and PutBucketLifecycleConfiguration
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketLifecycleConfiguration.html).
    In the sandbox the rules are stored and never applied: :func:`sweep` enforces retention.
    """
    validate_bucket_name(bucket)
    if not isinstance(replace, bool):
        raise InvalidParameterError(f"replace must be a bool, got {replace!r}")
    if isinstance(rules, (str, bytes, Mapping)) or not isinstance(rules, Sequence):
        raise InvalidParameterError("rules must be a list of lifecycle rules (mappings)")
    if not rules or not all(isinstance(r, Mapping) and isinstance(r.get("ID"), str)
                            and r.get("Status") in ("Enabled", "Disabled") for r in rules):
        raise InvalidParameterError("rules must be a non-empty list, each with an ID and Status")
    s3 = shared_client(check_session(session), "s3")
    merge_lifecycle_rules(s3, bucket, rules, replace=replace)


@dataclass(frozen=True)
class _Scope:
    """What a rule's filter selects: a key prefix, and whether it selects only part of it."""

    prefix: str
    partial: str | None  # why only some objects under the prefix match (tags, size), or None
    empty: bool          # the filter can match no object at all


def _scope(rule: Mapping[str, Any]) -> _Scope:
    flt = rule.get("Filter")
    if flt is None:  # the legacy top-level Prefix
        return _Scope(str(rule.get("Prefix", "")), None, False)
    body = flt.get("And", flt)
    prefix = str(body.get("Prefix", ""))
    tags = list(body.get("Tags", [])) + ([flt["Tag"]] if "Tag" in flt else [])
    reasons = [f"only objects tagged {t.get('Key')}={t.get('Value')}" for t in tags]
    gt, lt = body.get("ObjectSizeGreaterThan"), body.get("ObjectSizeLessThan")
    if gt is not None:
        reasons.append(f"only objects larger than {gt} bytes")
    if lt is not None:
        reasons.append(f"only objects smaller than {lt} bytes")
    empty = gt is not None and lt is not None and int(gt) + 1 >= int(lt)
    return _Scope(prefix, "; ".join(reasons) or None, empty)


def _overlaps(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


def _deletes(rule: Mapping[str, Any]) -> list[str]:
    """The actions of a rule that remove something."""
    out = []
    exp = rule.get("Expiration") or {}
    if "Days" in exp or "Date" in exp:
        out.append("expires current versions")
    if exp.get("ExpiredObjectDeleteMarker"):
        out.append("removes expired delete markers")
    if rule.get("NoncurrentVersionExpiration"):
        out.append("expires noncurrent versions")
    if rule.get("AbortIncompleteMultipartUpload"):
        out.append("aborts incomplete multipart uploads")
    return out


def _data_prefixes(s3: Any, bucket: str) -> list[str]:
    """Top-level prefixes that hold object versions (and ``""`` for keys without a ``/``)."""
    prefixes: set[str] = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Delimiter="/"):
        prefixes.update(p["Prefix"] for p in page.get("CommonPrefixes", []))
        if page.get("Versions") or page.get("DeleteMarkers"):
            prefixes.add("")
    return sorted(prefixes)


def inspect_lifecycle(
    session: boto3.Session,
    bucket: str,
    *,
    data_prefixes: Sequence[str] | None = None,
    max_days: int = BIPA_MAX_DAYS,
    registry: ConsentRegistry | None = None,
    ingest_window_days: int = RAW_EXPIRY_DAYS,
    window_prefixes: Sequence[str] = ("raw/",),
    clock: Callable[[], dt.datetime] | None = None,
) -> list[Finding]:
    """Check a bucket's lifecycle rules against the data it holds; one finding per check.

    ``data_prefixes``: where the data lives (for the kit's buckets, :data:`DATA_PREFIXES` of
    the role); by default the top-level prefixes found in the bucket now (ListObjectVersions
    with a delimiter), which cannot know about a prefix that is empty today. Checks (controls in
    :data:`LIFECYCLE_CONTROLS`):

    * ``lifecycle-configured``: the bucket has a lifecycle configuration;
    * ``lifecycle-rule`` (one finding per rule): the rule is enabled, its filter can match some
      of the data, and it removes something (expiration, noncurrent expiry, delete markers,
      multipart abort); a rule with only transitions never deletes anything;
    * ``lifecycle-expires-data``: every data prefix is wholly covered by an enabled rule that
      expires current versions within the limit: ``max_days`` (default 1,095, BIPA's 3 years),
      or with ``registry`` the longest consent term it holds (never more than ``max_days``);
      under ``window_prefixes`` (raw uploads) within ``ingest_window_days``. An
      ``Expiration.Date`` counts as the days from now (``clock``, default the kit clock) to it;
      a date or a number of days beyond the limit fails, and the finding says by how much;
    * ``lifecycle-noncurrent-expiry``: in a versioned bucket, noncurrent versions of every data
      prefix expire (otherwise every "deleted" or expired object stays as an old version),
      within the same limit, and without ``NewerNoncurrentVersions`` (which keeps that many
      old versions however old they are);
    * ``lifecycle-abort-multipart``: incomplete multipart uploads are aborted within the ingest
      window (their parts are raw recordings);
    * ``lifecycle-transitions``: transitions respect the Standard-IA 30-day minimum; the
      evidence explains the small-object caveat.

    Reads GetBucketLifecycleConfiguration and GetBucketVersioning
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLifecycleConfiguration.html).
    A configuration that cannot be read is reported as ``error``, never as a pass.
    """
    validate_bucket_name(bucket)
    _check_days("max_days", max_days, 1, 100_000)
    _check_days("ingest_window_days", ingest_window_days, 1, 100_000)
    now = (clock or _clock.now)()
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise InvalidParameterError("clock must return a timezone-aware datetime")
    if registry is not None:
        max_days = min(max_days, registry.longest_term_days())
    windows = tuple(window_prefixes)

    def limit(prefix: str) -> int:
        return (min(ingest_window_days, max_days)
                if any(prefix.startswith(w) for w in windows)
                else max_days)

    def days_to(date: Any) -> int:
        when = date if isinstance(date, dt.datetime) else dt.datetime.fromisoformat(str(date))
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        return max(0, (when - now).days)

    s3 = shared_client(session, "s3")
    findings: list[Finding] = []

    def add(control: str, ok: bool, evidence: str) -> None:
        findings.append(Finding(control, bucket, "pass" if ok else "fail", evidence))

    try:
        prefixes = (sorted(set(data_prefixes)) if data_prefixes is not None
                    else _data_prefixes(s3, bucket))
        if not prefixes:
            prefixes = [""]  # an empty bucket: judge the rules against the whole bucket
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "Off")
        try:
            rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
            rules = []
    except ClientError as exc:
        return [Finding(c, bucket, "error", f"could not evaluate: {exc}")
                for c in LIFECYCLE_CONTROLS]

    shown = ", ".join(p or "(whole bucket)" for p in prefixes)
    add("lifecycle-configured", bool(rules),
        f"{len(rules)} rule(s)" if rules else "no lifecycle configuration: nothing ever expires")

    enabled: list[tuple[Mapping[str, Any], _Scope]] = []
    for rule in rules:
        scope = _scope(rule)
        name = rule.get("ID", "(no id)")
        actions = _deletes(rule)
        problems = []
        if rule.get("Status") != "Enabled":
            problems.append("it is disabled")
        if scope.empty:
            problems.append("its size filter matches no object")
        elif not any(_overlaps(scope.prefix, p) for p in prefixes):
            problems.append(f"its prefix {scope.prefix!r} matches none of the data ({shown})")
        if not actions:
            problems.append("it removes nothing (transitions only)" if rule.get("Transitions")
                            else "it has no action")
        where = scope.prefix or "(whole bucket)"
        add("lifecycle-rule", not problems,
            f"rule {name!r} on {where}: " + ("; ".join(problems) + ", so it never expires "
                                              "anything" if problems else ", ".join(actions)))
        if not problems:
            enabled.append((rule, scope))

    def covering(prefix: str) -> list[tuple[Mapping[str, Any], _Scope]]:
        return [(r, s) for r, s in enabled if prefix.startswith(s.prefix) and s.partial is None]

    expiry_gaps, expiry_ok = [], []
    for prefix in prefixes:
        days = [int(r["Expiration"]["Days"]) for r, _ in covering(prefix)
                if "Days" in (r.get("Expiration") or {})]
        days += [days_to(r["Expiration"]["Date"]) for r, _ in covering(prefix)
                 if "Date" in (r.get("Expiration") or {})]
        label = prefix or "(whole bucket)"
        cap = limit(prefix)
        if days and min(days) <= cap:
            expiry_ok.append(f"{label} within {min(days)} days")
        elif days:
            expiry_gaps.append(f"{label} expires after {min(days)} days, beyond the "
                               f"{cap}-day limit by {min(days) - cap} days")
        else:
            partial = [s.partial for r, s in enabled if _overlaps(prefix, s.prefix) and s.partial]
            expiry_gaps.append(f"{label} never expires" + (
                f" (a rule covers {partial[0]})" if partial else ""))
    add("lifecycle-expires-data", not expiry_gaps,
        "; ".join(expiry_gaps) if expiry_gaps else "current versions expire: "
        + "; ".join(expiry_ok))

    if versioning == "Off":
        add("lifecycle-noncurrent-expiry", True, "versioning is off: there are no old versions")
    else:
        missing, too_long = [], []
        for p in prefixes:
            rules_nc = [r["NoncurrentVersionExpiration"] for r, _ in covering(p)
                        if r.get("NoncurrentVersionExpiration")]
            if not rules_nc:
                missing.append(p or "(whole bucket)")
                continue
            cap = limit(p)
            good = [n for n in rules_nc if int(n.get("NoncurrentDays", 0)) <= cap
                    and not int(n.get("NewerNoncurrentVersions", 0) or 0)]
            if not good:
                n = rules_nc[0]
                why = [f"NoncurrentDays {n.get('NoncurrentDays')} > {cap}-day limit by "
                       f"{int(n.get('NoncurrentDays', 0)) - cap} days"] if int(
                    n.get("NoncurrentDays", 0)) > cap else []
                if int(n.get("NewerNoncurrentVersions", 0) or 0):
                    why.append(f"NewerNoncurrentVersions {n['NewerNoncurrentVersions']} keeps "
                               "that many old versions however old they are")
                too_long.append(f"{p or '(whole bucket)'}: " + "; ".join(why))
        problems = ([f"versioning {versioning} and no noncurrent-version expiry for "
                     f"{', '.join(missing)}: an expired or deleted object only gets a delete "
                     "marker, and every old version stays readable by version id"]
                    if missing else []) + too_long
        add("lifecycle-noncurrent-expiry", not problems,
            "; ".join(problems) if problems else
            "noncurrent versions expire for every data prefix, within the limit")

    aborts = [int(r["AbortIncompleteMultipartUpload"].get("DaysAfterInitiation", 0))
              for r, s in enabled if r.get("AbortIncompleteMultipartUpload") and s.prefix == ""]
    if not aborts:
        add("lifecycle-abort-multipart", False, "no whole-bucket AbortIncompleteMultipartUpload: "
            "parts of abandoned uploads stay stored (and billed) for ever")
    else:
        add("lifecycle-abort-multipart", min(aborts) <= ingest_window_days,
            f"incomplete multipart uploads are aborted after {min(aborts)} days"
            + ("" if min(aborts) <= ingest_window_days else
               f", beyond the {ingest_window_days}-day ingest window by "
               f"{min(aborts) - ingest_window_days} days: their parts are raw recordings"))

    bad_ia, transitions = [], []
    for rule in rules:
        for tr in rule.get("Transitions", []) or []:
            cls, days = tr.get("StorageClass"), tr.get("Days")
            transitions.append(f"{rule.get('ID')}: {cls} at day {days}")
            if cls in _IA_CLASSES and days is not None and int(days) < IA_MIN_DAYS:
                bad_ia.append(f"rule {rule.get('ID')!r} moves to {cls} at day {days} "
                              f"(AWS requires at least {IA_MIN_DAYS})")
    add("lifecycle-transitions", not bad_ia,
        ("; ".join(bad_ia) + ". " if bad_ia else
         ("transitions: " + "; ".join(transitions) + ". " if transitions else "no transitions. "))
        + _SMALL_OBJECT_NOTE)
    return findings
