"""Workshop exercises: two or three per lesson, each with a checker that says what is still wrong.

A lesson ends with its exercises. In a cell, :func:`show` prints the task and returns the
starting value; the attendee edits it and calls :func:`check`, which prints what is still wrong
(or that it is solved) and never raises, so a class can run the notebook top to bottom. The
solutions live apart, in ``notebooks/solutions/<exercise id>.py`` (each defines ``answer``), and the
test suite runs every checker against its starting value (it must fail) and its solution (it must
pass).

Checkers judge with the kit's own code where the kit has it (the IAM evaluator for policies, the
id validators, the gap register, the scorecard's registry), so an exercise cannot drift from what
the kit teaches.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securepipe.access.credentials import CONTEXT_CONTRACTOR_KEY
from securepipe.errors import InvalidParameterError
from securepipe.ids import validate_contractor_id
from securepipe.policy import Policy, Request, evaluate

__all__ = ["EXERCISES", "Exercise", "check", "problems", "show"]

_BUCKET = "securepipe-raw-123456789012-eu-west-1"
_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
_ROLE = "arn:aws:sts::123456789012:assumed-role/securepipe-contractor/c01"


@dataclass(frozen=True)
class Exercise:
    """One task: what to do, where to start, and how to judge an answer."""

    id: str
    lesson: str
    task: str
    starter: Callable[[], Any]
    judge: Callable[[Any], list[str]]


# -- 00: the sandbox and its gaps -----------------------------------------------------------------


def _gaps_starter() -> set[str]:
    return {"kms-encryption-context"}


def _gaps_judge(answer: Any) -> list[str]:
    from securepipe.sandbox.gaps import MOTO_GAPS

    if not isinstance(answer, set | frozenset) or not all(isinstance(a, str) for a in answer):
        return ["answer with a set of gap ids (strings), e.g. {'s3-default-sse'}"]
    emulated = {g.id for g in MOTO_GAPS if g.response == "emulate"}
    known = {g.id for g in MOTO_GAPS}
    out = [f"{a!r} is not a gap id in the register" for a in sorted(answer - known)]
    out += [f"{a!r}: the kit only checks this one's configuration; it does not emulate it"
            for a in sorted((answer & known) - emulated)]
    missing = emulated - answer
    if missing:
        out.append(f"{len(missing)} emulated gap(s) missing, e.g. {sorted(missing)[0]!r}")
    return out


_CTX = f"kms:EncryptionContext:{CONTEXT_CONTRACTOR_KEY}"


def _threats() -> dict[str, tuple[str, dict[str, Any], str]]:
    """Each threat: (who, the identity policy they hold, the contractor whose recording's
    ciphertext they got). Every one of them has the ciphertext bytes; the question is whether
    KMS would decrypt its data key for them, decided by the kit's IAM evaluator."""
    from securepipe.access.credentials import contractor_session_policy
    from securepipe.provision.layout import AccountLayout
    from securepipe.provision.policies import kit_role_policy

    layout = AccountLayout("123456789012", "eu-west-1", data_key_arn=_KEY_ARN,
                           archive_key_arn=_KEY_ARN.replace("5555", "6666"),
                           signing_key_arn=_KEY_ARN.replace("5555", "7777"))
    bucket_only = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{_BUCKET}", f"arn:aws:s3:::{_BUCKET}/*"]}]}
    nothing = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{_BUCKET}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}
    own = contractor_session_policy("c01", bucket=_BUCKET, key_arn=_KEY_ARN)
    return {
        "leaked-bucket-credential": (_ROLE.replace("c01", "ci-runner"), bucket_only, "c01"),
        "leaked-presigned-url": (_ROLE.replace("c01", "c03"), nothing, "c03"),
        "contractor-copies-another-contractors-file": (_ROLE, own, "c02"),
        "contractor-shares-their-own-uploads": (_ROLE, own, "c01"),
        "ingest-role-bulk-copy": ("arn:aws:sts::123456789012:assumed-role/securepipe-ingest/i1",
                                  kit_role_policy("ingest", layout), "c04"),
    }


def _stops_starter() -> set[str]:
    return {"leaked-bucket-credential", "ingest-role-bulk-copy"}


def _decryptable(who: str, doc: Mapping[str, Any], owner: str) -> bool:
    request = Request("kms:Decrypt", _KEY_ARN, who, {_CTX: owner})
    return evaluate(request, identity=[Policy.from_document("holder", copy.deepcopy(doc))]).allowed


def _stops_judge(answer: Any) -> list[str]:
    threats = _threats()
    if not isinstance(answer, set | frozenset):
        return [f"answer with the set of threats (from {sorted(threats)}) that client-side "
                "encryption stops"]
    stopped = {name for name, t in threats.items() if not _decryptable(*t)}
    out = [f"{a!r} is not one of the threats" for a in sorted(answer - set(threats))]
    out += [f"{a!r} is not stopped: that principal may call kms:Decrypt for this recording's "
            "encryption context, so the ciphertext opens (another step must stop it)"
            for a in sorted((answer & set(threats)) - stopped)]
    out += [f"{a!r} is stopped too: the ciphertext leaks, but KMS refuses its data key to that "
            "principal" for a in sorted(stopped - answer)]
    return out


# -- 01: encrypt before upload ------------------------------------------------------------------


def _context_starter() -> dict[str, str]:
    return {"contractor": "c07", "sample_id": "spk03_u2"}


def _context_judge(answer: Any) -> list[str]:
    from securepipe.encryption.envelope import SampleContext

    if not isinstance(answer, SampleContext):
        return ["build a securepipe.encryption.SampleContext (a dict binds nothing: it is not "
                "checked and the SDK would accept any keys)"]
    want = {"contractor": "c07", "sample_id": "spk03_u2", "purpose": "speech-model-training"}
    got = {"contractor": answer.contractor, "sample_id": answer.sample_id,
           "purpose": answer.purpose}
    return [f"{k} is {got[k]!r}; the recording is {v!r}" for k, v in want.items() if got[k] != v]


def _moved_starter() -> set[str]:
    return set()


_MOVES = {
    "copied-to-c02-folder": True,   # the context names c01; a c02 reader asks for c02's
    "renamed-sample-id": True,      # the sample id is in the context
    "purpose-changed": True,        # purpose too
    "same-key-same-context": False,  # nothing changed: it decrypts
    "re-uploaded-by-c01": False,    # c01 uploading its own sample again decrypts for c01
}


def _moved_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with a set drawn from {sorted(_MOVES)}"]
    out = [f"{a!r} is not one of the cases" for a in sorted(answer - set(_MOVES))]
    refused = {k for k, v in _MOVES.items() if v}
    out += [f"{a!r} still decrypts: its encryption context did not change" for a in
            sorted((answer & set(_MOVES)) - refused)]
    out += [f"{a!r} is refused too: which field of the context changed?" for a in
            sorted(refused - answer)]
    return out


# -- 02: least privilege ------------------------------------------------------------------------


def _policy_starter() -> dict[str, Any]:
    bucket_arn = f"arn:aws:s3:::{_BUCKET}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "OwnObjects", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject"], "Resource": [f"{bucket_arn}/raw/*"]},
            {"Sid": "List", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [bucket_arn]},
            {"Sid": "Keys", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
             "Resource": [_KEY_ARN]},
        ],
    }


def _policy_judge(answer: Any) -> list[str]:
    try:
        policy = Policy.from_document("answer", copy.deepcopy(answer))
    except (InvalidParameterError, TypeError, ValueError, KeyError) as exc:
        return [f"not a policy the evaluator accepts: {exc}"]
    obj = f"arn:aws:s3:::{_BUCKET}"

    def allowed(action: str, resource: str, **context: Any) -> bool:
        request = Request(action, resource, _ROLE, context)
        return evaluate(request, identity=[policy]).allowed

    cases = [
        ("c01 reads its own recording", True, ("s3:GetObject", f"{obj}/raw/c01/a.enc")),
        ("c01 uploads its own recording", True, ("s3:PutObject", f"{obj}/raw/c01/b.enc")),
        ("c01 reads c02's recording", False, ("s3:GetObject", f"{obj}/raw/c02/a.enc")),
        ("c01 reads a file outside raw/", False, ("s3:GetObject", f"{obj}/features/x")),
    ]
    out = [f"{name}: {'refused' if want else 'allowed'}, should be "
           f"{'allowed' if want else 'refused'}"
           for name, want, (action, res) in cases if allowed(action, res) != want]
    for prefix, want in (("raw/c01/", True), ("raw/", False), ("raw/c02/", False), ("", False)):
        if allowed("s3:ListBucket", obj, **{"s3:prefix": prefix}) != want:
            out.append(f"listing with prefix {prefix!r} is "
                       f"{'refused' if want else 'allowed'}, should be "
                       f"{'allowed' if want else 'refused'} (an s3:prefix condition)")
    ctx = f"kms:EncryptionContext:{CONTEXT_CONTRACTOR_KEY}"
    if allowed("kms:Decrypt", _KEY_ARN, **{ctx: "c02"}):
        out.append("c01 can decrypt data keys whose encryption context names c02 "
                   f"(a condition on {ctx})")
    if not allowed("kms:Decrypt", _KEY_ARN, **{ctx: "c01"}):
        out.append("c01 can no longer decrypt its own data keys")
    return out


_IDS = ("c01", "*", 'c01", "Resource": "*', "C01", "c01/../c02", "acme-labs", "")


def _ids_starter() -> set[str]:
    return {"*"}


def _ids_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with the set of ids (from {list(_IDS)}) that validation refuses"]

    def refused(value: str) -> bool:
        try:
            validate_contractor_id(value)
        except InvalidParameterError:
            return True
        return False

    truth = {i for i in _IDS if refused(i)}
    out = [f"{a!r} is accepted by validate_contractor_id" for a in sorted(answer - truth)]
    out += [f"{a!r} is refused too" for a in sorted(truth - answer)]
    return out


# -- 03: audit and exfiltration -----------------------------------------------------------------


_ARN = f"arn:aws:s3:::{_BUCKET}/"
_PREFIXES = ("raw/c01/", "raw/c02/", "raw/c03/", "quarantine/")
#: A trail's advanced event selectors (GetEventSelectors output) with gaps a reviewer missed.
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


_SIGNING_KEY = _KEY_ARN.replace("5555", "7777")
#: Where the chain exercise's trail "A" was cut: the index of the line removed.
_CUT_AT = 9


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
        trail = AuditTrail(kms, _SIGNING_KEY, f"raw-reads-{name}", checkpoint_every=5)
        for i in range(14):
            trail.append({"action": "GetObject", "principal": f"c0{i % 3 + 1}",
                          "key": f"raw/c0{i % 3 + 1}/spk{i:02d}.enc", "bucket": _BUCKET})
        trails[name] = list(trail.close())
    del trails["A"][_CUT_AT]
    return ({n: tuple(lines) for n, lines in trails.items()},
            PublicKeyVerifier(_SIGNING_KEY, kms.key.public_key()))


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
        "requestParameters": {"bucketName": _BUCKET, "key": key},
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
    params: dict[str, Any] = {"bucketName": _BUCKET, "key": "raw/c01/spk01_u1.enc"}
    if name in ("CopyObject", "UploadPartCopy"):
        params = {"bucketName": "someone-elses-bucket", "key": "loot/spk01_u1.enc",
                  "x-amz-copy-source": f"{_BUCKET}/raw/c01/spk01_u1.enc"}
    return {"eventName": name, "eventSource": "s3.amazonaws.com",
            "eventTime": "2026-03-02T09:00:00Z",
            "userIdentity": {"type": "AssumedRole", "arn": _ROLE},
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
    out += [f"{a!r} moves a recording's bytes out too: a detector that ignores it is blind to "
            "that read path" for a in sorted(truth - answer)]
    return out


# -- 04: features, not raw ----------------------------------------------------------------------

_BIOMETRIC = {
    "raw-wav": True,
    "mel-spectrogram": True,
    "mfcc-13": True,
    "speaker-embedding": True,
    "transcript-text": False,
    "clip-duration-seconds": False,
}


def _biometric_starter() -> set[str]:
    return {"raw-wav"}


def _biometric_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with a set drawn from {sorted(_BIOMETRIC)}"]
    truth = {k for k, v in _BIOMETRIC.items() if v}
    out = [f"{a!r} is not one of the options" for a in sorted(answer - set(_BIOMETRIC))]
    out += [f"{a!r} does not identify a speaker by their voice" for a in
            sorted((answer & set(_BIOMETRIC)) - truth)]
    out += [f"{a!r} still identifies speakers: the leakage lab re-identifies from it" for a in
            sorted(truth - answer)]
    return out


#: ``anonymisation_table`` on the held-out voice family (``securepipe.data.heldout``), as
#: lesson 04 measured it on 2026-12-06 (seed 0, attacker seed 1): top-1 accuracy of the GMM-UBM
#: and nearest-neighbour attackers over 10 speakers. Kept here so the exercise runs in a
#: second; the lesson recomputes it.
_ANON_ROWS: tuple[dict[str, Any], ...] = tuple(
    {"anonymisation": a, "condition": c, "chance": 0.1, "gmm_top1": g, "nn_top1": n}
    for a, c, g, n in (
        ("none", "raw enrolled", 0.9, 0.65),
        ("McAdams alpha=0.8", "ignorant", 0.325, 0.5),
        ("McAdams alpha=0.8", "lazy-informed", 0.85, 0.675),
        ("McAdams alpha~U[0.7, 0.9) per utterance", "ignorant", 0.3, 0.475),
        ("McAdams alpha~U[0.7, 0.9) per utterance", "lazy-informed", 0.6, 0.55),
        ("pitch +-2-5 st & formants x(1+-0.08-0.18) per speaker", "ignorant", 0.2, 0.375),
        ("pitch +-2-5 st & formants x(1+-0.08-0.18) per speaker", "lazy-informed", 0.1, 0.175),
    ))
#: An attacker who names the right speaker this many times more often than chance identifies.
_IDENTIFIES_X_CHANCE = 3.0


def _anon_starter() -> dict[str, Any]:
    return {"rows": [dict(r) for r in _ANON_ROWS], "still_identifies": set()}


def _anon_judge(answer: Any) -> list[str]:
    got = answer.get("still_identifies") if isinstance(answer, Mapping) else None
    settings = {r["anonymisation"] for r in _ANON_ROWS} - {"none"}
    if not isinstance(got, set | frozenset):
        return [f"set answer['still_identifies'] to a set of settings from {sorted(settings)}"]
    informed = {r["anonymisation"]: max(r["gmm_top1"], r["nn_top1"]) / r["chance"]
                for r in _ANON_ROWS if r["condition"] == "lazy-informed"}
    truth = {a for a, x in informed.items() if x >= _IDENTIFIES_X_CHANCE}
    out = [f"{a!r} is not a setting in the table" for a in sorted(got - settings)]
    out += [f"{a!r}: the stronger attacker reaches only {informed[a]:.1f}x chance when it "
            "anonymises its own enrolment the same way" for a in sorted((got & settings) - truth)]
    out += [f"{a!r} still identifies: read the lazy-informed row (the attacker anonymises its "
            "enrolment recordings too), not the ignorant one" for a in sorted(truth - got)]
    return out


# -- 05: retention and erasure ------------------------------------------------------------------

_RULES: list[dict[str, Any]] = [
    {"ID": "a-raw-7d", "Status": "Enabled", "Filter": {"Prefix": "raw/"},
     "Expiration": {"Days": 7}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
    {"ID": "b-transition-only", "Status": "Enabled", "Filter": {"Prefix": "features/"},
     "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]},
    {"ID": "c-far-date", "Status": "Enabled", "Filter": {"Prefix": "features/"},
     "Expiration": {"Date": "2999-01-01T00:00:00Z"}},
    {"ID": "d-disabled", "Status": "Disabled", "Filter": {"Prefix": "raw/"},
     "Expiration": {"Days": 1}},
    {"ID": "e-features-3y", "Status": "Enabled", "Filter": {"Prefix": "features/"},
     "Expiration": {"Days": 1095}, "NoncurrentVersionExpiration": {"NoncurrentDays": 30}},
    {"ID": "f-current-only", "Status": "Enabled", "Filter": {"Prefix": "archive/"},
     "Expiration": {"Days": 365}},
]


def _expires_within(rule: Mapping[str, Any], days: int, today: dt.date) -> bool:
    """True if an enabled rule deletes current versions within ``days`` of their creation."""
    if rule.get("Status") != "Enabled":
        return False
    exp = rule.get("Expiration") or {}
    if "Days" in exp:
        return int(exp["Days"]) <= days
    if "Date" in exp:
        date = dt.date.fromisoformat(str(exp["Date"])[:10])
        return (date - today).days <= days
    return False


def _never_starter() -> set[str]:
    return {"c-far-date"}


def _never_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with a set of rule IDs from {[r['ID'] for r in _RULES]}"]
    today = dt.date(2026, 12, 6)
    truth = {r["ID"] for r in _RULES if not _expires_within(r, 1095, today)}
    ids = {r["ID"] for r in _RULES}
    out = [f"{a!r} is not a rule ID" for a in sorted(answer - ids)]
    out += [f"{a!r} does expire current versions within BIPA's 3 years" for a in
            sorted((answer & ids) - truth)]
    out += [f"{a!r} never deletes current versions within 3 years: look at Status, "
            "Expiration and transitions" for a in sorted(truth - answer)]
    return out


_HIDING = {
    "noncurrent-versions": True,
    "delete-marker-hidden-versions": True,
    "unfinished-multipart-uploads": True,
    "archive-copies": True,
    "key-registry-backups": True,
    "the-delete-marker-itself": False,
}


def _hiding_starter() -> set[str]:
    return {"noncurrent-versions"}


def _hiding_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with a set drawn from {sorted(_HIDING)}"]
    truth = {k for k, v in _HIDING.items() if v}
    out = [f"{a!r} is not one of the options" for a in sorted(answer - set(_HIDING))]
    out += [f"{a!r} holds no recording" for a in sorted((answer & set(_HIDING)) - truth)]
    out += [f"{a!r} can still hold (or restore) the speaker's data after a plain DELETE"
            for a in sorted(truth - answer)]
    return out


# -- 06: the checklist ---------------------------------------------------------------------------

_FINDINGS = {
    "a contractor holds a long-lived access key": "iam_contractor_no_access_keys",
    "the raw bucket uses the AWS-managed aws/s3 key": "s3_bucket_default_encryption_cmk",
    "plaintext WAVs are stored in the features bucket": "s3_objects_client_side_encrypted",
}


def _map_starter() -> dict[str, str]:
    return dict.fromkeys(_FINDINGS, "")


def _map_judge(answer: Any) -> list[str]:
    from securepipe.checks import REGISTRY

    if not isinstance(answer, Mapping):
        return ["answer with a dict from each finding to a check id"]
    out = []
    for finding, want in _FINDINGS.items():
        got = answer.get(finding, "")
        if got not in REGISTRY:
            out.append(f"{finding}: {got!r} is not a check id (see REGISTRY)")
        elif got != want:
            out.append(f"{finding}: {got!r} checks something else ({REGISTRY[got].title})")
    return out


#: A scorecard row as ``securepipe check`` printed it for an auditor role missing one action.
_ERROR_ROW = {
    "check": "s3_bucket_default_encryption_cmk", "status": "error",
    "evidence": "securepipe-raw-123456789012-eu-west-1: could not evaluate: "
                "GetBucketEncryption answered AccessDenied",
}


def _auditor_policy(extra: str | None = None) -> Policy:
    """The kit's auditor policy without ``s3:GetEncryptionConfiguration`` (plus ``extra``)."""
    from securepipe.provision.layout import AccountLayout
    from securepipe.provision.policies import kit_role_policy

    layout = AccountLayout("123456789012", "eu-west-1", data_key_arn=_KEY_ARN,
                           archive_key_arn=_KEY_ARN.replace("5555", "6666"),
                           signing_key_arn=_SIGNING_KEY)
    doc = kit_role_policy("auditor", layout)
    for st in doc["Statement"]:
        st["Action"] = [a for a in st["Action"] if a != "s3:GetEncryptionConfiguration"]
    if extra is not None:
        doc["Statement"].append({"Sid": "Added", "Effect": "Allow", "Action": [extra],
                                 "Resource": [f"arn:aws:s3:::{_BUCKET}"]})
    return Policy.from_document("auditor", doc)


def _permission_starter() -> dict[str, Any]:
    return {"row": dict(_ERROR_ROW), "missing_action": ""}


def _permission_judge(answer: Any) -> list[str]:
    action = answer.get("missing_action") if isinstance(answer, Mapping) else None
    if not isinstance(action, str) or not action:
        return ["set answer['missing_action'] to the IAM action the auditor role needs, "
                "e.g. 's3:SomeAction'"]
    who = "arn:aws:sts::123456789012:assumed-role/securepipe-auditor/check"
    need = Request("s3:GetEncryptionConfiguration", f"arn:aws:s3:::{_BUCKET}", who)
    try:
        fixed = evaluate(need, identity=[_auditor_policy(action)]).allowed
    except InvalidParameterError as exc:
        return [f"{action!r} is not an action a policy accepts: {exc}"]
    if not fixed:
        hint = (" (that is the API operation's name; IAM authorises it under another action "
                "name: see the S3 API reference's Permissions section)"
                if action.lower() == "s3:getbucketencryption" else "")
        return [f"with {action!r} added, the auditor is still refused the call{hint}"]
    if "*" in action:
        return [f"{action!r} works, but grants more than the one missing action"]
    return []


EXERCISES: dict[str, Exercise] = {e.id: e for e in (
    Exercise("00-emulated-gaps", "00", "Which gaps in the register does the kit EMULATE (refuse "
             "in its own code), rather than only check configuration? Answer a set of gap ids.",
             _gaps_starter, _gaps_judge),
    Exercise("00-what-encryption-stops", "00", "Each of these attackers got a recording's "
             "ciphertext. Which threats does client-side encryption (KMS data keys bound to "
             "the contractor) stop on its own? Answer a set from: leaked-bucket-credential, "
             "leaked-presigned-url, contractor-copies-another-contractors-file, "
             "contractor-shares-their-own-uploads, ingest-role-bulk-copy.",
             _stops_starter, _stops_judge),
    Exercise("01-bind-the-context", "01", "Contractor c07 uploads sample spk03_u2 for speech "
             "model training. Build the SampleContext that binds its ciphertext.",
             _context_starter, _context_judge),
    Exercise("01-what-refuses", "01", "A sample was encrypted bound to c01. Which of these "
             "changes make decryption refuse? Answer a set of case names.",
             _moved_starter, _moved_judge),
    Exercise("02-leaky-session-policy", "02", "This session policy for c01 leaks other "
             "contractors' data (objects, listing and keys). Fix it so c01 reaches only "
             "raw/c01/ and its own data keys.", _policy_starter, _policy_judge),
    Exercise("02-hostile-ids", "02", "Which of these contractor ids does the kit's validation "
             "refuse before any policy exists? Answer a set.", _ids_starter, _ids_judge),
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
    Exercise("04-still-biometric", "04", "Which of these stored forms still identify a "
             "speaker (biometric data under GDPR Art. 9 and BIPA)? Answer a set.",
             _biometric_starter, _biometric_judge),
    Exercise("04-anonymisation-leaks", "04", "From lesson 04's anonymisation table "
             "(answer['rows']), which settings still let an attacker name the speaker at least "
             "3 times as often as chance? Put them in answer['still_identifies'].",
             _anon_starter, _anon_judge),
    Exercise("05-never-expires", "05", "Which of these lifecycle rules never delete current "
             "versions within BIPA's 3 years? Answer a set of rule IDs (today is 2026-12-06).",
             _never_starter, _never_judge),
    Exercise("05-where-data-hides", "05", "In a versioned bucket, after a plain DELETE of a "
             "speaker's object, where can their data still be? Answer a set.",
             _hiding_starter, _hiding_judge),
    Exercise("06-which-check", "06", "Map each finding to the scorecard check that fails on "
             "it (check ids are the keys of securepipe.checks.REGISTRY).",
             _map_starter, _map_judge),
    Exercise("06-missing-permission", "06", "This scorecard row (answer['row']) could not be "
             "evaluated. Which IAM action must the auditor role gain? Set "
             "answer['missing_action'].", _permission_starter, _permission_judge),
)}


def _get(exercise_id: str) -> Exercise:
    try:
        return EXERCISES[exercise_id]
    except (KeyError, TypeError):
        raise InvalidParameterError(f"no exercise {exercise_id!r}; see EXERCISES") from None


def show(exercise_id: str) -> Any:
    """Print the task and return a fresh starting value to edit."""
    exercise = _get(exercise_id)
    print(f"Exercise {exercise.id}: {exercise.task}")
    return exercise.starter()


def problems(exercise_id: str, answer: Any) -> list[str]:
    """What is still wrong with ``answer`` (empty when solved)."""
    return _get(exercise_id).judge(answer)


def check(exercise_id: str, answer: Any) -> bool:
    """Print what is still wrong with ``answer`` (or that it is solved); True when solved."""
    wrong = problems(exercise_id, answer)
    if not wrong:
        print(f"{exercise_id}: solved")
        return True
    print(f"{exercise_id}: not yet")
    for line in wrong:
        print(f"  - {line}")
    return False
