"""Re-applying the kit's settings without trampling anyone else's: merge by identifier.

A bucket policy, a role's trust policy or a lifecycle configuration is one document that
several writers share (the kit's hardening, its presigned-URL cap, CloudTrail's delivery
statements, your own statements). Every kit function that writes such a document owns only the
statements (by ``Sid``) or rules (by ``ID``) it puts there: :func:`merge_by_id` replaces those
in place, keeps every other entry as it is and in its order, and appends new ones. Re-running a
kit function therefore changes nothing the second time, and never removes what another writer
added. :func:`merge_bucket_policy` and :func:`merge_lifecycle_rules` are the S3 round trips
(Get, merge, Put only when something changed).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from securepipe.errors import InvalidParameterError

__all__ = ["merge_bucket_policy", "merge_by_id", "merge_lifecycle_rules", "merge_policy"]

POLICY_VERSION = "2012-10-17"


def merge_by_id(existing: Iterable[Mapping[str, Any]], ours: Sequence[Mapping[str, Any]], *,
                key: str = "Sid") -> list[dict[str, Any]]:
    """``existing`` with each entry of ``ours`` put in place of the entry with the same ``key``
    (or appended); every other entry is kept, unchanged and in order.

    Every entry of ``ours`` must carry a non-empty string ``key``, unique within ``ours``: an
    entry without one could never be found again, so a re-run would add a copy.
    """
    ids: list[str] = []
    for entry in ours:
        ident = entry.get(key) if isinstance(entry, Mapping) else None
        if not isinstance(ident, str) or not ident:
            raise InvalidParameterError(f"every statement or rule to merge needs a {key}")
        if ident in ids:
            raise InvalidParameterError(f"{key} {ident!r} appears twice in what is merged")
        ids.append(ident)
    new = {e[key]: copy.deepcopy(dict(e)) for e in ours}
    out: list[dict[str, Any]] = []
    placed: set[str] = set()
    for entry in existing:
        ident = entry.get(key)
        if isinstance(ident, str) and ident in new:
            if ident not in placed:  # a duplicate of ours in the old document is dropped
                out.append(new[ident])
                placed.add(ident)
            continue
        out.append(copy.deepcopy(dict(entry)))
    out.extend(new[i] for i in ids if i not in placed)
    return out


def merge_policy(document: Mapping[str, Any] | None,
                 statements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A policy document with ``statements`` merged by ``Sid`` (see :func:`merge_by_id`)."""
    doc: dict[str, Any] = (copy.deepcopy(dict(document)) if document
                           else {"Version": POLICY_VERSION})
    current: Any = doc.get("Statement", [])
    if isinstance(current, Mapping):  # a single statement may be written without a list
        current = [current]
    doc.setdefault("Version", POLICY_VERSION)
    doc["Statement"] = merge_by_id(current, statements)
    return doc


def merge_bucket_policy(s3: Any, bucket: str, statements: Sequence[Mapping[str, Any]]) -> bool:
    """Merge ``statements`` into ``bucket``'s policy by ``Sid``; True if the policy changed.

    Wraps GetBucketPolicy and PutBucketPolicy
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketPolicy.html). Nothing is
    written when the merged policy equals the current one.
    """
    try:
        current: dict[str, Any] | None = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchBucketPolicy":
            raise
        current = None
    merged = merge_policy(current, statements)
    if current is not None and merged == current:
        return False
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(merged))
    return True


def merge_lifecycle_rules(s3: Any, bucket: str, rules: Sequence[Mapping[str, Any]], *,
                          replace: bool = False) -> bool:
    """Merge lifecycle ``rules`` into ``bucket``'s configuration by ``ID``; True if it changed.

    With ``replace`` the configuration becomes exactly ``rules``. Wraps
    GetBucketLifecycleConfiguration and PutBucketLifecycleConfiguration
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketLifecycleConfiguration.html).
    """
    current: list[dict[str, Any]] = []
    if not replace:
        try:
            current = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
    merged = merge_by_id(current, rules, key="ID")
    if current and merged == current:
        return False
    s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                          LifecycleConfiguration={"Rules": merged})
    return True
