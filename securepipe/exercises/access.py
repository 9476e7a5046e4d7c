"""Lesson 02's exercises: session policies and hostile ids."""

from __future__ import annotations

import copy
from typing import Any

from securepipe.access.credentials import CONTEXT_CONTRACTOR_KEY
from securepipe.errors import InvalidParameterError
from securepipe.exercises.base import BUCKET, KEY_ARN, ROLE, Exercise
from securepipe.ids import validate_contractor_id
from securepipe.policy import Policy, Request, evaluate


def _policy_starter() -> dict[str, Any]:
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "OwnObjects", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject"], "Resource": [f"{bucket_arn}/raw/*"]},
            {"Sid": "List", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [bucket_arn]},
            {"Sid": "Keys", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
             "Resource": [KEY_ARN]},
        ],
    }


def _policy_judge(answer: Any) -> list[str]:
    try:
        policy = Policy.from_document("answer", copy.deepcopy(answer))
    except (InvalidParameterError, TypeError, ValueError, KeyError) as exc:
        return [f"not a policy the evaluator accepts: {exc}"]
    obj = f"arn:aws:s3:::{BUCKET}"

    def allowed(action: str, resource: str, **context: Any) -> bool:
        request = Request(action, resource, ROLE, context)
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
    if allowed("kms:Decrypt", KEY_ARN, **{ctx: "c02"}):
        out.append("c01 can decrypt data keys whose encryption context names c02 "
                   f"(a condition on {ctx})")
    if not allowed("kms:Decrypt", KEY_ARN, **{ctx: "c01"}):
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


EXERCISES: tuple[Exercise, ...] = (
    Exercise("02-leaky-session-policy", "02", "This session policy for c01 leaks other "
             "contractors' data (objects, listing and keys). Fix it so c01 reaches only "
             "raw/c01/ and its own data keys.", _policy_starter, _policy_judge),
    Exercise("02-hostile-ids", "02", "Which of these contractor ids does the kit's validation "
             "refuse before any policy exists? Answer a set.", _ids_starter, _ids_judge),
)
