"""The scorecard as OCSF Detection Findings: where security teams already read findings.

One finding per check and resource, in the Open Cybersecurity Schema Framework's *Detection
Finding* class (``class_uid`` 2004, category Findings; https://schema.ocsf.io/1.1.0/classes/detection_finding),
with the ``cloud`` profile: the shape Prowler writes with ``-M json-ocsf`` (prowler-cloud/prowler,
``prowler/lib/outputs/ocsf/ocsf.py``) and AWS Security Lake ingests. Mapping:

* ``status_code``: ``PASS``, ``FAIL``, or ``MANUAL`` for ``error`` and ``unverifiable`` (OCSF has
  no "could not evaluate"; ``status_detail`` carries the reason, ``unmapped.securepipe_status``
  the kit's own status);
* ``severity_id``: low 2, medium 3, high 4, critical 5 (OCSF ``severity_id`` enum);
* ``finding_info.uid``: stable per account, check, resource (and its rank when a check reports
  one resource for several controls), so a re-run names the same finding;
* ``metadata.event_code``: the check id; ``remediation.desc``: the kit function to run.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from securepipe.checks import Scorecard

OCSF_VERSION = "1.1.0"
CLASS_UID = 2004
CATEGORY_UID = 2
ACTIVITY_CREATE = 1
TYPE_UID = CLASS_UID * 100 + ACTIVITY_CREATE  # 200401: Detection Finding: Create
SEVERITY_ID = {"low": 2, "medium": 3, "high": 4, "critical": 5}
_STATUS_CODE = {"pass": "PASS", "fail": "FAIL", "error": "MANUAL", "unverifiable": "MANUAL"}


def _uid(*parts: str) -> str:
    return "securepipe-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def findings(card: Scorecard, *, product_version: str = "0.1.0") -> list[dict[str, Any]]:
    """Every resource result of ``card`` as one OCSF Detection Finding (a JSON-ready dict)."""
    when = int(card.started.timestamp() * 1000)  # OCSF timestamps are epoch milliseconds
    account = card.account_id or "unknown"
    out: list[dict[str, Any]] = []
    for result in card.results:
        check = result.check
        seen: dict[str, int] = {}
        for res in result.resources:
            severity = check.severity
            # A check may report one resource several times (one per control): number them.
            nth = seen[res.resource] = seen.get(res.resource, 0) + 1
            out.append({
                "class_uid": CLASS_UID, "class_name": "Detection Finding",
                "category_uid": CATEGORY_UID, "category_name": "Findings",
                "activity_id": ACTIVITY_CREATE, "activity_name": "Create",
                "type_uid": TYPE_UID, "type_name": "Detection Finding: Create",
                "time": when,
                "severity_id": SEVERITY_ID[severity], "severity": severity.capitalize(),
                "status_id": 1, "status": "New",
                "status_code": _STATUS_CODE[res.status],
                "status_detail": res.evidence,
                "message": f"{check.title}: {res.status}",
                "finding_info": {
                    "uid": _uid(account, check.id, res.resource, str(nth)),
                    "title": check.title, "desc": check.rationale,
                    "types": [f"securepipe/step-{check.step}"],
                    "created_time": when,
                },
                "remediation": {"desc": check.remediation},
                "resources": [{"uid": res.resource, "name": card.config.label(res.resource),
                               "type": _resource_type(res.resource),
                               "region": card.region or ""}],
                "cloud": {"provider": "AWS", "region": card.region or "",
                          "account": {"uid": account, "type_id": 10, "type": "AWS Account"}},
                "metadata": {
                    "version": OCSF_VERSION, "event_code": check.id,
                    "profiles": ["cloud"],
                    "product": {"uid": "securepipe", "name": "securepipe scorecard",
                                "vendor_name": "securepipe", "version": product_version},
                },
                "unmapped": {"securepipe_status": res.status, "step": check.step,
                             "checklist": check.checklist,
                             "kit_function": check.kit_function or ""},
            })
    return out


def _resource_type(resource: str) -> str:
    if resource.startswith("arn:aws:kms:"):
        return "AwsKmsKey"
    if resource.startswith(("user/", "role/")):
        return "AwsIamUser" if resource.startswith("user/") else "AwsIamRole"
    if resource.startswith("s3://") or resource.replace("-", "").replace(".", "").isalnum():
        return "AwsS3Bucket" if not resource.startswith("s3://") else "AwsS3Object"
    return "Other"


def to_ocsf_json(card: Scorecard, *, indent: int | None = 2) -> str:
    """:func:`findings` as a JSON array (what ``securepipe check --ocsf PATH`` writes)."""
    return json.dumps(findings(card), indent=indent)
