"""What a generic scanner's checks say about the same account: the side-by-side, measured.

A generic scanner checks every account the same way. To compare it with the kit without quoting
figures the kit did not produce, this module re-expresses the decision logic of five widely used
Prowler checks (prowler-cloud/prowler, Apache-2.0; the file each one follows is named on it) and
runs them, with the kit's own checks, against one account while each misconfiguration is
introduced alone and then undone. These are reconstructions of the published logic, not Prowler
itself: Prowler's own run may differ in what it lists (regions, shadow trails) but decides each
resource as written here.

* ``s3_bucket_kms_encryption``: passes when the bucket's default encryption algorithm is
  ``aws:kms`` (or ``aws:kms:dsse``); the key is never looked at.
* ``s3_bucket_lifecycle_enabled``: passes when any lifecycle rule is ``Enabled``; what it
  filters on and when it expires are never looked at.
* ``cloudtrail_s3_dataevents_read_enabled``: passes on a classic selector logging reads of
  every bucket, or on any advanced selector whose ``resources.type`` is ``AWS::S3::Object``,
  whatever its ``resources.ARN`` and ``readOnly`` fields say.
* ``cloudwatch_log_metric_filter_disable_or_scheduled_deletion_of_kms_cmk`` (CIS 4.7): passes
  when a trail's log group has a metric filter whose *text* matches a regular expression naming
  ``DisableKey`` before ``ScheduleKeyDeletion``, and some alarm is on that filter's metric name;
  the alarm's actions and the trail's logging status are never looked at.

:func:`side_by_side` introduces each of :data:`MISCONFIGURATIONS` alone on an account the kit
has hardened, runs the kit's check and the generic check before and while it is there, and
undoes it (restoring exactly what it read), so each row is attributable to one change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from securepipe.audit.alarms import GuardConfig
from securepipe.audit.monitoring import MonitoringConfig
from securepipe.checks import CheckConfig, Scorecard, run_checks
from securepipe.errors import InvalidParameterError, SecurePipeError

__all__ = [
    "MISCONFIGURATIONS",
    "GenericFinding",
    "Misconfiguration",
    "cis_kms_alarm_by_text",
    "data_events_any_object_selector",
    "default_encryption_is_kms",
    "lifecycle_rule_enabled",
    "side_by_side",
]

GenericStatus = Literal["PASS", "FAIL"]


@dataclass(frozen=True)
class GenericFinding:
    """One resource's result from a generic check: Prowler's check id, PASS or FAIL, why."""

    check: str
    resource: str
    status: GenericStatus
    reason: str


# -- the generic checks, as their published logic decides ----------------------------------------

def default_encryption_is_kms(session: boto3.Session,
                              buckets: Sequence[str]) -> list[GenericFinding]:
    """``s3_bucket_kms_encryption``: the first default-encryption rule's algorithm is ``aws:kms``
    or ``aws:kms:dsse`` (``prowler/providers/aws/services/s3/s3_bucket_kms_encryption/``).

    Wraps S3 GetBucketEncryption
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketEncryption.html)."""
    s3, out = session.client("s3"), []
    for bucket in buckets:
        try:
            rules = s3.get_bucket_encryption(Bucket=bucket)[
                "ServerSideEncryptionConfiguration"]["Rules"]
            algorithm = rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
        except (ClientError, KeyError, IndexError):
            algorithm = None
        ok = algorithm in ("aws:kms", "aws:kms:dsse")
        out.append(GenericFinding("s3_bucket_kms_encryption", bucket, "PASS" if ok else "FAIL",
                                  f"default encryption {algorithm}"))
    return out


def lifecycle_rule_enabled(session: boto3.Session,
                           buckets: Sequence[str]) -> list[GenericFinding]:
    """``s3_bucket_lifecycle_enabled``: any lifecycle rule with ``Status: Enabled``
    (``prowler/providers/aws/services/s3/s3_bucket_lifecycle_enabled/``).

    Wraps S3 GetBucketLifecycleConfiguration
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLifecycleConfiguration.html)."""
    s3, out = session.client("s3"), []
    for bucket in buckets:
        try:
            rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        except ClientError:
            rules = []
        enabled = [r.get("ID", "?") for r in rules if r.get("Status") == "Enabled"]
        out.append(GenericFinding("s3_bucket_lifecycle_enabled", bucket,
                                  "PASS" if enabled else "FAIL",
                                  f"enabled rules: {', '.join(enabled) or 'none'}"))
    return out


def data_events_any_object_selector(session: boto3.Session) -> list[GenericFinding]:
    """``cloudtrail_s3_dataevents_read_enabled``
    (``prowler/providers/aws/services/cloudtrail/cloudtrail_s3_dataevents_read_enabled/``):
    one account-level result.

    Passes on a classic selector with ``ReadWriteType`` ``ReadOnly`` or ``All`` and an
    ``AWS::S3::Object`` data resource whose values include ``arn:aws:s3``, ``arn:aws:s3:::`` or
    ``arn:aws:s3:::*/*``; or on any advanced selector with a ``resources.type`` field whose
    first ``Equals`` value is ``AWS::S3::Object``. Wraps CloudTrail DescribeTrails and
    GetEventSelectors
    (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_GetEventSelectors.html).
    """
    ct = session.client("cloudtrail")
    every = {"arn:aws:s3", "arn:aws:s3:::", "arn:aws:s3:::*/*"}
    for trail in ct.describe_trails()["trailList"]:
        selectors = ct.get_event_selectors(TrailName=trail["TrailARN"])
        for sel in selectors.get("EventSelectors") or []:
            if sel.get("ReadWriteType") in ("ReadOnly", "All") and any(
                    r.get("Type") == "AWS::S3::Object" and every & set(r.get("Values", []))
                    for r in sel.get("DataResources", [])):
                return [GenericFinding("cloudtrail_s3_dataevents_read_enabled", trail["Name"],
                                       "PASS", "classic selector on every bucket")]
        for sel in selectors.get("AdvancedEventSelectors") or []:
            for field in sel.get("FieldSelectors", []):
                if (field.get("Field") == "resources.type"
                        and (field.get("Equals") or [None])[0] == "AWS::S3::Object"):
                    return [GenericFinding("cloudtrail_s3_dataevents_read_enabled",
                                           trail["Name"], "PASS",
                                           f"advanced selector {sel.get('Name')!r} on "
                                           "AWS::S3::Object")]
    return [GenericFinding("cloudtrail_s3_dataevents_read_enabled", "account", "FAIL",
                           "no trail selector on S3 object data events")]


#: The text test of the CIS 4.7 check: ``DisableKey`` must come before ``ScheduleKeyDeletion``.
_CIS_47_TEXT = re.compile(r"\$\.eventSource\s*=\s*.?kms.amazonaws.com.+\$\.eventName\s*=\s*.?"
                          r"DisableKey.+\$\.eventName\s*=\s*.?ScheduleKeyDeletion.?")


def cis_kms_alarm_by_text(session: boto3.Session) -> list[GenericFinding]:
    """``cloudwatch_log_metric_filter_disable_or_scheduled_deletion_of_kms_cmk``
    (``prowler/providers/aws/services/cloudwatch/<that name>/``): one account-level result.

    Passes when a log group that a trail delivers to has a metric filter whose pattern text
    matches the CIS 4.7 regular expression and any alarm is on that filter's metric name.
    Wraps CloudTrail DescribeTrails, CloudWatch Logs DescribeMetricFilters and CloudWatch
    DescribeAlarms
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html).
    """
    groups = {t["CloudWatchLogsLogGroupArn"].split(":")[6]
              for t in session.client("cloudtrail").describe_trails()["trailList"]
              if t.get("CloudWatchLogsLogGroupArn")}
    alarmed = {a.get("MetricName") for page in session.client("cloudwatch").get_paginator(
        "describe_alarms").paginate() for a in page.get("MetricAlarms", [])}
    logs = session.client("logs")
    name = "cloudwatch_log_metric_filter_disable_or_scheduled_deletion_of_kms_cmk"
    found = "no filter pattern matching the CIS 4.7 text"
    for group in sorted(groups):
        for f in logs.describe_metric_filters(logGroupName=group).get("metricFilters", []):
            if _CIS_47_TEXT.search(f.get("filterPattern", "")):
                metrics = {m["metricName"] for m in f.get("metricTransformations", [])}
                if metrics & alarmed:
                    return [GenericFinding(name, group, "PASS",
                                           f"filter {f['filterName']} with an alarm")]
                found = f"filter {f['filterName']} matches, no alarm on its metric"
    return [GenericFinding(name, "account", "FAIL", found)]


# -- misconfigurations, each introduced alone and undone -----------------------------------------

Undo = Callable[[], None]


@dataclass(frozen=True)
class Misconfiguration:
    """One change to a hardened account: which kit check and which generic check judge it.

    ``introduce(session, config)`` makes the change and returns the function that restores
    exactly what it replaced."""

    name: str
    kit_check: str
    generic_check: str
    generic: Callable[[boto3.Session, CheckConfig], GenericFinding]
    introduce: Callable[[boto3.Session, CheckConfig], Undo]


def _raw(config: CheckConfig) -> str:
    raw = [b.name for b in config.buckets if b.role == "raw"]
    if not raw:
        raise InvalidParameterError("the configuration names no raw bucket")
    return raw[0]


def _data_buckets(config: CheckConfig) -> list[str]:
    return [b.name for b in config.buckets if b.role in ("raw", "features", "archive")]


def _provider_default_key(session: boto3.Session, config: CheckConfig) -> Undo:
    s3, bucket = session.client("s3"), _raw(config)
    saved = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},   # key: aws/s3
        "BucketKeyEnabled": True}]})
    return lambda: s3.put_bucket_encryption(Bucket=bucket,
                                            ServerSideEncryptionConfiguration=saved)


def _lifecycle_where_nothing_lives(session: boto3.Session, config: CheckConfig) -> Undo:
    s3, bucket = session.client("s3"), _raw(config)
    saved = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [{
        "ID": "expire-uploads", "Status": "Enabled", "Filter": {"Prefix": "uploads/"},
        "Expiration": {"Days": 30}}]})
    return lambda: s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": saved})


def _selectors_only_raw(session: boto3.Session, config: CheckConfig) -> Undo:
    ct, trail = session.client("cloudtrail"), MonitoringConfig().trail_name
    saved = ct.get_event_selectors(TrailName=trail).get("AdvancedEventSelectors")
    if not saved:
        raise SecurePipeError(f"trail {trail} has no advanced event selectors to replace")
    ct.put_event_selectors(TrailName=trail, AdvancedEventSelectors=[{
        "Name": "raw uploads only", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
            {"Field": "resources.ARN",
             "StartsWith": [f"arn:aws:s3:::{b}/raw/" for b in _data_buckets(config)]}]}])
    return lambda: ct.put_event_selectors(TrailName=trail, AdvancedEventSelectors=saved)


def _metric_filter(session: boto3.Session) -> tuple[Any, dict[str, Any]]:
    logs, group = session.client("logs"), GuardConfig().log_group
    filters = logs.describe_metric_filters(
        logGroupName=group, filterNamePrefix="securepipe-kms-key-disable-or-deletion")
    found = [f for f in filters.get("metricFilters", [])
             if f["filterName"] == "securepipe-kms-key-disable-or-deletion"]
    if len(found) != 1:
        raise SecurePipeError("expected the kit's CIS 4.7 metric filter once, "
                              f"found {len(found)} in {group}")
    return logs, found[0]


def _put_filter(logs: Any, saved: dict[str, Any], pattern: str) -> None:
    # delete first: moto adds a second filter of the same name where AWS replaces it
    logs.delete_metric_filter(logGroupName=saved["logGroupName"], filterName=saved["filterName"])
    logs.put_metric_filter(logGroupName=saved["logGroupName"], filterName=saved["filterName"],
                           filterPattern=pattern,
                           metricTransformations=saved["metricTransformations"])


def _cis_filter_reordered(session: boto3.Session, config: CheckConfig) -> Undo:
    logs, saved = _metric_filter(session)
    _put_filter(logs, saved, '{ ($.eventName = "ScheduleKeyDeletion" || $.eventName = '
                             'DisableKey) && $.eventSource = "kms.amazonaws.com" }')
    return lambda: _put_filter(logs, saved, saved["filterPattern"])


_ALARM_FIELDS = ("AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
                 "InsufficientDataActions", "MetricName", "Namespace", "Statistic",
                 "Dimensions", "Period", "EvaluationPeriods", "Threshold",
                 "ComparisonOperator", "TreatMissingData")


def _cis_alarm_notifies_nobody(session: boto3.Session, config: CheckConfig) -> Undo:
    cw = session.client("cloudwatch")
    alarms = cw.describe_alarms(AlarmNames=["securepipe-kms-key-disable-or-deletion"])[
        "MetricAlarms"]
    if len(alarms) != 1:
        raise SecurePipeError("expected the kit's CIS 4.7 alarm")
    saved = {k: alarms[0][k] for k in _ALARM_FIELDS if k in alarms[0]}
    cw.put_metric_alarm(**{**saved, "AlarmActions": []})
    return lambda: cw.put_metric_alarm(**saved)


def _bucket_finding(check: Callable[[boto3.Session, Sequence[str]], list[GenericFinding]]
                    ) -> Callable[[boto3.Session, CheckConfig], GenericFinding]:
    return lambda session, config: check(session, [_raw(config)])[0]


def _account_finding(check: Callable[[boto3.Session], list[GenericFinding]]
                     ) -> Callable[[boto3.Session, CheckConfig], GenericFinding]:
    return lambda session, config: check(session)[0]


MISCONFIGURATIONS: tuple[Misconfiguration, ...] = (
    Misconfiguration("raw bucket's default encryption with aws/s3, not the customer key",
                     "s3_bucket_default_encryption_cmk", "s3_bucket_kms_encryption",
                     _bucket_finding(default_encryption_is_kms), _provider_default_key),
    Misconfiguration("raw bucket's only lifecycle rule on a prefix where nothing lives",
                     "s3_lifecycle_expires_data", "s3_bucket_lifecycle_enabled",
                     _bucket_finding(lifecycle_rule_enabled), _lifecycle_where_nothing_lives),
    Misconfiguration("trail's advanced selectors log only raw/ in every bucket",
                     "cloudtrail_s3_data_events", "cloudtrail_s3_dataevents_read_enabled",
                     _account_finding(data_events_any_object_selector), _selectors_only_raw),
    Misconfiguration("CIS 4.7 filter written ScheduleKeyDeletion || DisableKey (equivalent)",
                     "cloudwatch_key_and_policy_change_alarms",
                     "cloudwatch_log_metric_filter_disable_or_scheduled_deletion_of_kms_cmk",
                     _account_finding(cis_kms_alarm_by_text), _cis_filter_reordered),
    Misconfiguration("CIS 4.7 alarm that notifies nobody",
                     "cloudwatch_key_and_policy_change_alarms",
                     "cloudwatch_log_metric_filter_disable_or_scheduled_deletion_of_kms_cmk",
                     _account_finding(cis_kms_alarm_by_text), _cis_alarm_notifies_nobody),
)


def side_by_side(session: boto3.Session, config: CheckConfig,
                 misconfigurations: Sequence[Misconfiguration] = MISCONFIGURATIONS, *,
                 baseline: Scorecard | None = None) -> list[dict[str, str]]:
    """One row per misconfiguration: the kit's and the generic check's status on the account as
    it is, then with the change introduced alone; the change is undone before the next row
    (also when a check raises). Every status is measured on ``session``'s account.

    The account as it is is measured once per check (two rows judged by one check share it),
    and ``baseline``, a scorecard just run with the same ``config`` on the account as it is,
    gives the kit's column its "before" statuses without running those checks again."""
    if not isinstance(session, boto3.Session):
        raise InvalidParameterError("side_by_side needs a boto3.Session")
    if baseline is not None and (not isinstance(baseline, Scorecard)
                                 or baseline.config != config):
        raise InvalidParameterError("baseline must be a Scorecard run with the same config")

    def kit(check_id: str) -> str:
        return run_checks(session, config=config, checks=[check_id]).results[0].status

    kit_before: dict[str, str] = {}
    generic_before: dict[str, GenericFinding] = {}
    if baseline is not None:
        kit_before = {r.check.id: r.status for r in baseline.results}
    rows = []
    for m in misconfigurations:
        if m.kit_check not in kit_before:
            kit_before[m.kit_check] = kit(m.kit_check)
        if m.generic_check not in generic_before:
            generic_before[m.generic_check] = m.generic(session, config)
        before_kit, before_generic = kit_before[m.kit_check], generic_before[m.generic_check]
        undo = m.introduce(session, config)
        try:
            with_kit, with_generic = kit(m.kit_check), m.generic(session, config)
        finally:
            undo()
        rows.append({"misconfiguration": m.name, "kit check": m.kit_check,
                     "kit": f"{before_kit} -> {with_kit}",
                     "generic check (Prowler's logic)": m.generic_check,
                     "generic": f"{before_generic.status.lower()} -> "
                                f"{with_generic.status.lower()}",
                     "generic says": with_generic.reason})
    return rows
