"""Re-applying every kit apply function, in any order, leaves the scorecard as green as before:
each one merges its own statements (by Sid) and rules (by ID) and leaves the others alone."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable

from securepipe.access.credentials import ensure_contractor_role
from securepipe.access.presigned import PRESIGN_CAP_SID, apply_presign_age_cap
from securepipe.audit.monitoring import apply_monitoring
from securepipe.checks import run_checks
from securepipe.checks.scenarios import hardened_account
from securepipe.encryption.hardening import (
    apply_account_public_access_block,
    apply_bucket_hardening,
)
from securepipe.retention.lifecycle import apply_lifecycle, lifecycle_rules
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)


def test_reapplying_in_any_order_keeps_the_scorecard() -> None:
    with Sandbox() as sb:
        scenario = hardened_account(sb, contractors=("c02",), pending=0)
        session, res = sb.session, sb.resources
        config = scenario.check_config(session)
        raw, features, archive, audit = (res.bucket(r) for r in
                                         ("raw", "features", "archive", "audit"))
        data_key, archive_key = res.kms_key_arn, res.archive_key_arn

        def statuses() -> dict[str, str]:
            return {r.check.id: r.status for r in run_checks(session, config=config).results}

        before = statuses()
        assert "fail" not in before.values() and "error" not in before.values(), before

        steps: dict[str, Callable[[], object]] = {
            "hardening": lambda: [apply_bucket_hardening(session, b, k) for b, k in (
                (raw, data_key), (features, data_key), (archive, archive_key),
                (audit, data_key))],
            "account-pab": lambda: apply_account_public_access_block(session),
            "presign-cap": lambda: [apply_presign_age_cap(session, b)
                                    for b in (raw, features, archive)],
            "monitoring": lambda: apply_monitoring(session, [raw, features, archive], audit,
                                                   kms_key_arn=data_key),
            # The kit's default rules (the scenario's features term is shorter): merged by ID.
            "lifecycle": lambda: [apply_lifecycle(session, b, lifecycle_rules(role))
                                  for b, role in ((raw, "raw"), (archive, "archive"))],
            "contractor-role": lambda: ensure_contractor_role(
                session, bucket=raw, key_arn=data_key, max_session_s=3600),
        }
        names = list(steps)
        orders = [names, names[::-1], random.Random(20).sample(names, len(names))]
        s3 = session.client("s3")
        for order in orders:
            for name in order:
                steps[name]()
            assert statuses() == before, order
            sids = {b: {st.get("Sid") for st in json.loads(
                s3.get_bucket_policy(Bucket=b)["Policy"])["Statement"]} for b in (raw, audit)}
            assert PRESIGN_CAP_SID in sids[raw]
            assert {"AWSCloudTrailAclCheck", "AWSCloudTrailWrite",
                    "DenyInsecureTransport"} <= sids[audit]
