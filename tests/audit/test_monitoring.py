"""Monitoring configuration applied and read back (securepipe.audit.monitoring).

moto stores trails, selectors, alarms, topics and queues (so those checks are real round trips),
does not store request-metrics configurations (gap s3-request-metrics: the check must say
``unverifiable``) and never evaluates alarms (gap cloudwatch-alarms).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from securepipe.audit.monitoring import (
    CONTROLS,
    UNVERIFIABLE_METRICS,
    MonitoringFinding,
    apply_monitoring,
    inspect_monitoring,
)
from securepipe.errors import InvalidParameterError
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.gaps import gap


def _data(sb: Sandbox) -> list[str]:
    return [sb.resources.bucket("raw"), sb.resources.bucket("features")]


def _status(findings: Sequence[MonitoringFinding], control: str,
            resource: str | None = None) -> set[str]:
    return {f.status for f in findings
            if f.control == control and (resource is None or f.resource == resource)}


def test_a_fresh_account_fails(sandbox: Sandbox) -> None:
    findings = inspect_monitoring(sandbox.session, _data(sandbox))
    assert {f.control for f in findings} == set(CONTROLS)
    for control in ("trail-logging", "s3-data-events", "kms-management-events",
                    "alarm-get-requests", "alarm-bytes-downloaded", "alarm-delivery"):
        assert _status(findings, control) == {"fail"}, control
    assert not any(f.passed for f in findings if f.control != "no-storage-metric-alarm")


def test_apply_then_inspect_passes_request_metrics_unverifiable(sandbox: Sandbox) -> None:
    data = _data(sandbox)
    setup = apply_monitoring(sandbox.session, data, sandbox.resources.bucket("audit"),
                             kms_key_arn=sandbox.resources.kms_key_arn)
    apply_monitoring(sandbox.session, data, sandbox.resources.bucket("audit"))  # idempotent
    assert len(setup.alarm_names) == 4 and setup.topic_arn.startswith("arn:aws:sns:")
    assert any("PutBucketMetricsConfiguration" in note for note in setup.notes)
    findings = inspect_monitoring(sandbox.session, data)
    metrics = [f for f in findings if f.control == "s3-request-metrics"]
    assert [f.resource for f in metrics] == sorted(data)
    for finding in metrics:
        assert finding.status == "unverifiable" and not finding.passed
        assert finding.evidence.startswith(UNVERIFIABLE_METRICS)
    others = [f for f in findings if f.control != "s3-request-metrics"]
    assert all(f.status == "pass" for f in others), [f for f in others if not f.passed]
    assert len([f for f in others if f.control == "s3-data-events"]) == 2
    assert findings[0].bucket == findings[0].resource
    assert gap("s3-request-metrics").response == "check"


def test_a_number_of_objects_alarm_is_flagged(sandbox: Sandbox) -> None:
    raw = sandbox.resources.bucket("raw")
    cw = sandbox.session.client("cloudwatch")
    topic = sandbox.session.client("sns").create_topic(Name="ops")["TopicArn"]
    cw.put_metric_alarm(  # the common pattern
        AlarmName="bulk-download", Namespace="AWS/S3", MetricName="NumberOfObjects",
        Dimensions=[{"Name": "BucketName", "Value": raw},
                    {"Name": "StorageType", "Value": "AllStorageTypes"}],
        Statistic="Average", Period=86400, EvaluationPeriods=1, Threshold=10000,
        ComparisonOperator="GreaterThanThreshold", AlarmActions=[topic])
    findings = inspect_monitoring(sandbox.session, [raw])
    wrong = next(f for f in findings if f.control == "no-storage-metric-alarm")
    assert wrong.status == "fail" and "'bulk-download'" in wrong.evidence
    assert "daily storage metric" in wrong.evidence
    assert _status(findings, "alarm-get-requests") == {"fail"}  # nothing that sees reads


def test_alarms_without_filter_or_action_fail(sandbox: Sandbox) -> None:
    raw = sandbox.resources.bucket("raw")
    sandbox.session.client("cloudwatch").put_metric_alarm(
        AlarmName="gets", Namespace="AWS/S3", MetricName="GetRequests",
        Dimensions=[{"Name": "BucketName", "Value": raw}], Statistic="Sum", Period=3600,
        EvaluationPeriods=1, Threshold=100, ComparisonOperator="GreaterThanThreshold")
    finding = next(f for f in inspect_monitoring(sandbox.session, [raw])
                   if f.control == "alarm-get-requests")
    assert finding.status == "fail"
    assert "FilterId" in finding.evidence and "SNS" in finding.evidence
    assert "too coarse" in finding.evidence


@pytest.mark.parametrize(("selectors", "kms_ok", "s3_ok"), [
    ({"EventSelectors": [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True,
                          "DataResources": [{"Type": "AWS::S3::Object",
                                             "Values": ["arn:aws:s3"]}]}]}, False, False),
    ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True,
                          "ExcludeManagementEventSources": ["kms.amazonaws.com"],
                          "DataResources": [{"Type": "AWS::S3::Object",
                                             "Values": ["arn:aws:s3"]}]}]}, False, True),
    ({"AdvancedEventSelectors": [{"FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Data"]},
        {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
        {"Field": "readOnly", "Equals": ["false"]}]}]}, False, False),
    ({"AdvancedEventSelectors": [
        {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                            {"Field": "resources.ARN", "NotStartsWith": ["arn:aws:s3:::secure"]}]},
        {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]},
                            {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]}]},
    ]}, False, False),
], ids=["write-only", "kms-excluded", "advanced-writes-only", "bucket-excluded"])
def test_selectors_are_evaluated_not_pattern_matched(
        sandbox: Sandbox, selectors: dict, kms_ok: bool, s3_ok: bool) -> None:
    raw = sandbox.resources.bucket("raw")
    ct = sandbox.session.client("cloudtrail")
    ct.create_trail(Name="ops-trail", S3BucketName=sandbox.resources.bucket("audit"),
                    IsMultiRegionTrail=True, EnableLogFileValidation=True)
    ct.put_event_selectors(TrailName="ops-trail", **selectors)
    ct.start_logging(Name="ops-trail")
    findings = inspect_monitoring(sandbox.session, [raw])
    assert _status(findings, "trail-logging") == {"pass"}
    assert _status(findings, "kms-management-events") == {"pass" if kms_ok else "fail"}
    assert _status(findings, "s3-data-events", raw) == {"pass" if s3_ok else "fail"}


def test_stopped_trail_fails(sandbox: Sandbox) -> None:
    data = _data(sandbox)
    apply_monitoring(sandbox.session, data, sandbox.resources.bucket("audit"))
    sandbox.session.client("cloudtrail").stop_logging(Name="securepipe-data-events")
    findings = inspect_monitoring(sandbox.session, data)
    assert _status(findings, "trail-logging") == {"fail"}
    assert _status(findings, "s3-data-events") == {"fail"}


def test_bad_arguments(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidParameterError):
        apply_monitoring(sandbox.session, [], sandbox.resources.bucket("audit"))
    raw = sandbox.resources.bucket("raw")
    with pytest.raises(InvalidParameterError):
        apply_monitoring(sandbox.session, [raw], raw)
