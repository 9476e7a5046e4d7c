"""Lessons 03 and 03b's exercises: trail coverage, a cut chain, exfiltration and read paths."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import random
from collections.abc import Mapping, Sequence
from typing import Any

from securepipe.errors import InvalidParameterError
from securepipe.exercises.base import BUCKET, ROLE, SIGNING_KEY, Exercise

_ARN = f"arn:aws:s3:::{BUCKET}/"
_PREFIXES = ("raw/c01/", "raw/c02/", "raw/c03/", "quarantine/")
#: A trail's advanced event selectors (GetEventSelectors output) with gaps a reviewer missed. An
#: event is logged when one selector matches all its field selectors; ``readOnly`` takes only
#: ``Equals``, ``resources.ARN`` also ``StartsWith``/``NotStartsWith``:
#: https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_AdvancedFieldSelector.html
_SELECTORS: dict[str, Any] = {"AdvancedEventSelectors": [
    {"Name": "writes under raw/",
     "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                        {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                        {"Field": "readOnly", "Equals": ["false"]},
                        {"Field": "resources.ARN", "StartsWith": [f"{_ARN}raw/"]}]},
    {"Name": "reads under raw/, without the noisy contractor",
     "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                        {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                        {"Field": "readOnly", "Equals": ["true"]},
                        {"Field": "resources.ARN", "StartsWith": [f"{_ARN}raw/"]},
                        {"Field": "resources.ARN", "NotStartsWith": [f"{_ARN}raw/c03/"]}]},
    {"Name": "uploads to quarantine/",
     "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                        {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                        {"Field": "eventName", "Equals": ["PutObject"]},
                        {"Field": "resources.ARN", "StartsWith": [f"{_ARN}quarantine/"]}]},
    {"Name": "management events",
     "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
]}


def _logged(selectors: Mapping[str, Any], operation: str, prefix: str) -> bool:
    from securepipe.audit.monitoring import DATA_OPERATIONS, prefix_coverage

    read_only = dict(DATA_OPERATIONS)[operation]
    return prefix_coverage(selectors, f"{_ARN}{prefix}", operation, read_only)


def _gap_starter() -> dict[str, Any]:
    return {"selectors": copy.deepcopy(_SELECTORS), "not_logged": set()}


def _gap_judge(answer: Any) -> list[str]:
    from securepipe.audit.monitoring import DATA_OPERATIONS

    pairs = answer.get("not_logged") if isinstance(answer, Mapping) else answer
    ops = [op for op, _ in DATA_OPERATIONS]
    if not isinstance(pairs, set | frozenset) or not all(
            isinstance(p, tuple) and len(p) == 2 for p in pairs):
        return [f"set answer['not_logged'] to a set of (operation, prefix) pairs, operations "
                f"from {ops}, prefixes from {list(_PREFIXES)}"]
    universe = {(op, prefix) for op in ops for prefix in _PREFIXES}
    truth = {pair for pair in universe if not _logged(_SELECTORS, *pair)}
    out = [f"{p!r} is not an (operation, prefix) pair of this exercise"
           for p in sorted(pairs - universe, key=repr)]
    for op, prefix in sorted((pairs & universe) - truth):
        by = next(sel["Name"] for sel in _SELECTORS["AdvancedEventSelectors"]
                  if _logged({"AdvancedEventSelectors": [sel]}, op, prefix))
        out.append(f"{(op, prefix)!r} is logged, by the selector {by!r}")
    missing = truth - pairs
    if missing:
        out.append(f"{len(missing)} unlogged pair(s) still missing: an event is logged only when "
                   "one selector matches all its field selectors at once")
    return out


class _LocalKms:
    """Stands in for KMS ``Sign`` (ECDSA_SHA_256 over a RAW message, as KMS does) with a local
    pyca/cryptography P-256 key, so an exercise can build a signed trail without an account."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())

    def client(self, name: str) -> _LocalKms:
        return self

    def sign(self, *, KeyId: str, Message: bytes, MessageType: str,  # boto3's parameter names
             SigningAlgorithm: str) -> dict[str, bytes]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        if MessageType != "RAW" or SigningAlgorithm != "ECDSA_SHA_256":
            raise InvalidParameterError("the local signer signs RAW messages with ECDSA_SHA_256")
        return {"Signature": self.key.sign(Message, ec.ECDSA(hashes.SHA256()))}


#: Where the chain exercise's trail "A" was cut: the index of the line removed.
CUT_AT = 9


@functools.cache
def _trails() -> tuple[dict[str, tuple[str, ...]], Any]:
    """Two shipped trails of 14 reads each, checkpoints every 5 records, and the verifier pinned
    to their signing key; one line of trail "A" removed (cached: the same trails all session)."""
    from securepipe.audit.chain import AuditTrail
    from securepipe.encryption.signing import PublicKeyVerifier

    kms = _LocalKms()
    trails = {}
    for name in ("A", "B"):
        # kms is duck-typed: AuditTrail only calls session.client("kms").sign(...)
        trail = AuditTrail(kms, SIGNING_KEY, f"raw-reads-{name}", checkpoint_every=5)
        for i in range(14):
            trail.append({"action": "GetObject", "principal": f"c0{i % 3 + 1}",
                          "key": f"raw/c0{i % 3 + 1}/spk{i:02d}.enc", "bucket": BUCKET})
        trails[name] = list(trail.close())
    del trails["A"][CUT_AT]
    return ({n: tuple(lines) for n, lines in trails.items()},
            PublicKeyVerifier(SIGNING_KEY, kms.key.public_key()))


def _chain_starter() -> dict[str, Any]:
    lines, verifier = _trails()
    return {"trails": {n: list(t) for n, t in lines.items()}, "verifier": verifier,
            "first_bad_line": {"A": None, "B": None}}


def _chain_judge(answer: Any) -> list[str]:
    from securepipe.audit.chain import verify_trail

    got = answer.get("first_bad_line") if isinstance(answer, Mapping) else None
    if not isinstance(got, Mapping):
        return ["set answer['first_bad_line'] to a dict: trail name -> None if the trail is "
                "intact, else the index of the first line that breaks"]
    lines, verifier = _trails()
    out = []
    for name, trail in lines.items():
        result = verify_trail(trail, verifier, name=f"raw-reads-{name}")
        want = None if result.ok else result.index
        said = got.get(name, "missing")
        if said == want and not isinstance(said, bool):
            continue
        if want is None:
            out.append(f"trail {name}: it verifies; every line chains and every checkpoint's "
                       "signature holds")
        elif said is None:
            out.append(f"trail {name}: it does not verify (verify_trail with the pinned "
                       "verifier says why)")
        elif isinstance(said, int) and not isinstance(said, bool):
            out.append(f"trail {name}: line {said} is not the first that breaks; it breaks "
                       f"{'earlier' if want < said else 'later'}")
        else:
            out.append(f"trail {name}: answer None or a line index, not {said!r}")
    return out


def _trail() -> list[dict[str, Any]]:
    """A small, seeded list of CloudTrail-shaped GetObject records: three contractors reading
    their own prefixes at a working pace, one of them also reading every prefix in a burst."""
    rng = random.Random(20261206)
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    records = []
    for contractor in ("c01", "c02", "c03"):
        t = start
        for _ in range(40):
            t += dt.timedelta(minutes=rng.randint(3, 9))
            records.append(_record(contractor, f"raw/{contractor}/spk{rng.randint(1, 10):02d}", t))
    burst = start + dt.timedelta(hours=2, minutes=17)
    for i in range(60):
        owner = ("c01", "c02", "c03")[i % 3]
        records.append(_record("c02", f"raw/{owner}/spk{i % 10 + 1:02d}_u{i // 10}",
                               burst + dt.timedelta(seconds=5 * i)))
    records.sort(key=lambda r: r["eventTime"])
    return records


def _record(contractor: str, key: str, when: dt.datetime) -> dict[str, Any]:
    return {
        "eventName": "GetObject",
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "userIdentity": {"type": "AssumedRole",
                         "arn": f"arn:aws:sts::123456789012:assumed-role/securepipe-contractor/"
                                f"{contractor}"},
        "requestParameters": {"bucketName": BUCKET, "key": key},
    }


def _busiest(records: Sequence[Mapping[str, Any]], window: dt.timedelta) -> tuple[str, int]:
    """The principal with the most distinct objects read within any one window."""
    best = ("", 0)
    by: dict[str, list[tuple[dt.datetime, str]]] = {}
    for r in records:
        when = dt.datetime.strptime(r["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        by.setdefault(r["userIdentity"]["arn"], []).append((when, r["requestParameters"]["key"]))
    for arn, reads in by.items():
        for i, (t0, _) in enumerate(reads):
            keys = {k for t, k in reads[i:] if t - t0 < window}
            if len(keys) > best[1]:
                best = (arn, len(keys))
    return best


def _exfil_starter() -> dict[str, Any]:
    return {"trail": _trail(), "principal": ""}


def _exfil_judge(answer: Any) -> list[str]:
    principal = answer.get("principal") if isinstance(answer, Mapping) else answer
    if not isinstance(principal, str):
        return ["set answer['principal'] to the ARN of the principal you suspect"]
    arn, count = _busiest(_trail(), dt.timedelta(minutes=10))
    if principal == arn:
        return []
    if principal.endswith(arn.rsplit("/", 1)[-1]) and principal != arn:
        return ["right contractor; give the full ARN from userIdentity.arn"]
    return [f"{principal or 'nobody'} is not the one: count distinct keys per principal in "
            f"10-minute windows (the top reads {count} in one window)"]


#: CloudTrail data events an analyst might see; which move a recording's bytes out?
_EVENT_NAMES = ("GetObject", "HeadObject", "ListObjectsV2", "CopyObject", "UploadPartCopy",
                "SelectObjectContent", "RestoreObject", "GetObjectTagging", "GetObjectTorrent",
                "PutObject")


def _event(name: str) -> dict[str, Any]:
    params: dict[str, Any] = {"bucketName": BUCKET, "key": "raw/c01/spk01_u1.enc"}
    if name in ("CopyObject", "UploadPartCopy"):
        params = {"bucketName": "someone-elses-bucket", "key": "loot/spk01_u1.enc",
                  "x-amz-copy-source": f"{BUCKET}/raw/c01/spk01_u1.enc"}
    return {"eventName": name, "eventSource": "s3.amazonaws.com",
            "eventTime": "2026-03-02T09:00:00Z",
            "userIdentity": {"type": "AssumedRole", "arn": ROLE},
            "requestParameters": params}


def _is_read(name: str) -> bool:
    """Does the kit's detector count this event as a read of the data (``READ_KINDS``)?"""
    from securepipe.audit.events import KINDS, READ_KINDS, normalise

    batch, _ = normalise([_event(name)])
    return len(batch) == 1 and KINDS[int(batch.kind[0])] in {KINDS[k] for k in READ_KINDS}


def _reads_starter() -> set[str]:
    return {"GetObject"}


def _reads_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with the set of event names (from {list(_EVENT_NAMES)}) that read data"]
    truth = {n for n in _EVENT_NAMES if _is_read(n)}
    out = [f"{a!r} is not one of the events" for a in sorted(answer - set(_EVENT_NAMES))]
    out += [f"{a!r} moves no object bytes to the caller or elsewhere (a probe, a write, or a "
            "restore inside the bucket)" for a in sorted((answer & set(_EVENT_NAMES)) - truth)]
    missing = truth - answer
    if missing:
        out.append(f"{len(missing)} more event(s) move a recording's bytes out (a detector that "
                   "ignores one is blind to that read path): think of copies, queries and "
                   "other ways to download")
    return out


EXERCISES: tuple[Exercise, ...] = (
    Exercise("03-trail-gap", "03", "A reviewer says this trail logs every object operation "
             "on the raw bucket. Which (operation, prefix) pairs are NOT logged by "
             "answer['selectors']? Operations: GetObject, PutObject, DeleteObject; prefixes: "
             "raw/c01/, raw/c02/, raw/c03/, quarantine/. Put them in answer['not_logged'].",
             _gap_starter, _gap_judge),
    Exercise("03-where-was-it-cut", "03", "Two shipped trails, and the verifier pinned to their "
             "signing key. For each, is the chain intact? Set answer['first_bad_line'][name] to "
             "None, or to the index of the first line that breaks.",
             _chain_starter, _chain_judge),
    Exercise("03b-find-the-exfiltrator", "03b", "In this trail one principal read far more "
             "distinct recordings than the others within ten minutes. Set "
             "answer['principal'] to its ARN.", _exfil_starter, _exfil_judge),
    Exercise("03b-which-are-reads", "03b", "Which of these CloudTrail S3 events move a "
             "recording's bytes out of the bucket (to the caller or to another bucket)? "
             f"Answer a set from: {', '.join(_EVENT_NAMES)}.", _reads_starter, _reads_judge),
)
