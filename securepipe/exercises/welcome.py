"""Lesson 00's exercises: the sandbox's gaps, and what client-side encryption stops."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from securepipe.access.credentials import CONTEXT_CONTRACTOR_KEY
from securepipe.exercises.base import BUCKET, KEY_ARN, ROLE, Exercise, kit_layout
from securepipe.policy import Policy, Request, evaluate


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


def threats() -> dict[str, tuple[str, dict[str, Any], str]]:
    """Each threat: (who, the identity policy they hold, the contractor whose recording's
    ciphertext they got). Every one of them has the ciphertext bytes; the question is whether
    KMS would decrypt its data key for them, decided by the kit's IAM evaluator."""
    from securepipe.access.credentials import contractor_session_policy
    from securepipe.provision.policies import kit_role_policy

    layout = kit_layout()
    bucket_only = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}
    # A presigned link lends its holder one GetObject and nothing more: no credentials of their
    # own, so no KMS call at all.
    presigned = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:aws:s3:::{BUCKET}/raw/c03/spk07_u1.enc"]}]}
    own = contractor_session_policy("c01", bucket=BUCKET, key_arn=KEY_ARN)
    return {
        "leaked-bucket-credential": (ROLE.replace("c01", "ci-runner"), bucket_only, "c01"),
        "leaked-presigned-url": (ROLE.replace("c01", "c03"), presigned, "c03"),
        "contractor-copies-another-contractors-file": (ROLE, own, "c02"),
        "contractor-shares-their-own-uploads": (ROLE, own, "c01"),
        "ingest-role-bulk-copy": ("arn:aws:sts::123456789012:assumed-role/securepipe-ingest/i1",
                                  kit_role_policy("ingest", layout), "c04"),
    }


def _stops_starter() -> set[str]:
    return {"leaked-bucket-credential", "ingest-role-bulk-copy"}


def decryptable(who: str, doc: Mapping[str, Any], owner: str) -> bool:
    """Would KMS Decrypt a data key bound to ``owner`` for ``who`` holding policy ``doc``? (The
    identity side of the decision, by the kit's IAM evaluator.)"""
    request = Request("kms:Decrypt", KEY_ARN, who, {_CTX: owner})
    return evaluate(request, identity=[Policy.from_document("holder", copy.deepcopy(doc))]).allowed


def _stops_judge(answer: Any) -> list[str]:
    known = threats()
    if not isinstance(answer, set | frozenset):
        return [f"answer with the set of threats (from {sorted(known)}) that client-side "
                "encryption stops"]
    stopped = {name for name, t in known.items() if not decryptable(*t)}
    out = [f"{a!r} is not one of the threats" for a in sorted(answer - set(known))]
    out += [f"{a!r} is not stopped: that principal may call kms:Decrypt for this recording's "
            "encryption context, so the ciphertext opens (another step must stop it)"
            for a in sorted((answer & set(known)) - stopped)]
    missing = stopped - answer
    if missing:
        out.append(f"{len(missing)} more threat(s) are stopped: ask, for each, whether KMS would "
                   "hand that principal the data key for that recording's context")
    return out


EXERCISES: tuple[Exercise, ...] = (
    Exercise("00-emulated-gaps", "00", "Which gaps in the register does the kit EMULATE (refuse "
             "in its own code), rather than only check configuration? Answer a set of gap ids.",
             _gaps_starter, _gaps_judge),
    Exercise("00-what-encryption-stops", "00", "Each of these attackers got a recording's "
             "ciphertext. Which threats does client-side encryption (KMS data keys bound to "
             "the contractor) stop on its own? Answer a set from: leaked-bucket-credential, "
             "leaked-presigned-url, contractor-copies-another-contractors-file, "
             "contractor-shares-their-own-uploads, ingest-role-bulk-copy.",
             _stops_starter, _stops_judge),
)
