"""The generic scanner's logic beside the kit's checks: measured, attributable, undone."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securepipe.checks import generic, run_checks
from securepipe.checks.generic import (
    cis_kms_alarm_by_text,
    data_events_any_object_selector,
    default_encryption_is_kms,
    lifecycle_rule_enabled,
    side_by_side,
)
from securepipe.checks.scenarios import hardened_account
from securepipe.errors import InvalidParameterError
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def hardened() -> Iterator[tuple[Sandbox, Any]]:
    with Sandbox() as sb:
        scenario = hardened_account(sb, contractors=("c02",), pending=1)
        yield sb, scenario.check_config(sb.session)


def _readme_rows() -> list[dict[str, str]]:
    text = README.read_text()
    table = text[text.index("<!-- side-by-side:"):].split("\n\n")[0].splitlines()[3:]
    rows = []
    for line in table:
        cells = [c.strip().strip("`").replace("\\|", "|")
                 for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append(dict(zip(("misconfiguration", "kit check", "kit",
                              "generic check (Prowler's logic)", "generic"), cells,
                             strict=True)))
    return rows


def test_side_by_side_is_the_readme_table_and_leaves_the_account_as_it_was(
        hardened: tuple[Sandbox, Any]) -> None:
    sb, config = hardened
    before = {r.check.id: r.status for r in run_checks(sb.session, config=config).results}
    rows = side_by_side(sb.session, config)
    after = {r.check.id: r.status for r in run_checks(sb.session, config=config).results}
    assert after == before
    measured = [{k: v for k, v in r.items() if k != "generic says"} for r in rows]
    assert measured == _readme_rows()
    # every row disagrees: the kit and the generic logic judge the change differently
    assert all(r["kit"] != r["generic"] for r in rows)


def test_a_baseline_scorecard_gives_the_same_rows_with_fewer_runs(
        hardened: tuple[Sandbox, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    sb, config = hardened
    baseline = run_checks(sb.session, config=config)
    calls: list[object] = []
    real = generic.run_checks

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("checks"))
        return real(*args, **kwargs)

    monkeypatch.setattr(generic, "run_checks", counted)
    rows = side_by_side(sb.session, config, baseline=baseline)
    assert [{k: v for k, v in r.items() if k != "generic says"} for r in rows] == _readme_rows()
    assert len(calls) == len(generic.MISCONFIGURATIONS)     # only the runs with a change in
    other = dataclasses.replace(config, ingest_window=config.ingest_window * 2)
    with pytest.raises(InvalidParameterError):
        side_by_side(sb.session, other, baseline=baseline)


def test_a_change_is_undone_even_when_a_check_fails_midway(
        hardened: tuple[Sandbox, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    sb, config = hardened
    raw = sb.resources.bucket("raw")
    s3 = sb.session.client("s3")
    saved = s3.get_bucket_encryption(Bucket=raw)["ServerSideEncryptionConfiguration"]
    calls: list[str] = []
    real = generic.run_checks

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append("run")
        if len(calls) == 2:   # the run with the change in place
            raise RuntimeError("throttled")
        return real(*args, **kwargs)

    monkeypatch.setattr(generic, "run_checks", flaky)
    with pytest.raises(RuntimeError):
        side_by_side(sb.session, config, generic.MISCONFIGURATIONS[:1])
    assert s3.get_bucket_encryption(Bucket=raw)["ServerSideEncryptionConfiguration"] == saved


def test_the_generic_logic_on_plain_configurations() -> None:
    with Sandbox() as sb:
        s3, bucket = sb.session.client("s3"), sb.resources.bucket("raw")

        def encryption(algorithm: str) -> str:
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm}}]})
            return default_encryption_is_kms(sb.session, [bucket])[0].status

        assert encryption("AES256") == "FAIL" and encryption("aws:kms") == "PASS"

        def lifecycle(status: str) -> str:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
                "Rules": [{"ID": "r", "Status": status, "Filter": {"Prefix": "x/"},
                           "Expiration": {"Days": 1}}]})
            return lifecycle_rule_enabled(sb.session, [bucket])[0].status

        assert lifecycle("Disabled") == "FAIL" and lifecycle("Enabled") == "PASS"

        assert data_events_any_object_selector(sb.session)[0].status == "FAIL"   # no trail
        assert cis_kms_alarm_by_text(sb.session)[0].status == "FAIL"
        ct = sb.session.client("cloudtrail")
        ct.create_trail(Name="generic-trail", S3BucketName=sb.resources.bucket("audit"))

        def classic(rw: str, values: list[str]) -> str:
            ct.put_event_selectors(TrailName="generic-trail", EventSelectors=[{
                "ReadWriteType": rw, "IncludeManagementEvents": True,
                "DataResources": [{"Type": "AWS::S3::Object", "Values": values}]}])
            return data_events_any_object_selector(sb.session)[0].status

        assert classic("WriteOnly", ["arn:aws:s3"]) == "FAIL"
        assert classic("ReadOnly", [f"arn:aws:s3:::{bucket}/"]) == "FAIL"   # one bucket only
        assert classic("ReadOnly", ["arn:aws:s3"]) == "PASS"
