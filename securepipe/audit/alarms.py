"""Alarms on the changes that can destroy or expose the keys and buckets: CIS monitoring 4.x.

The keys that wrap every recording's data key can crypto-shred the whole dataset (disable or
schedule deletion), and a bucket-policy change can open every recording. The CIS AWS
Foundations Benchmark's monitoring controls ask for a CloudWatch Logs metric filter on the
CloudTrail log group, and an alarm on it, for each: "disabling or scheduled deletion of
customer created CMKs" (v1.4/v3.0 control 4.7; Security Hub CloudWatch.7) and "S3 bucket policy
changes" (4.8; CloudWatch.8)
(https://docs.aws.amazon.com/securityhub/latest/userguide/cloudwatch-controls.html).

:func:`apply_guard_alarms` creates them the CIS way (the trail delivers to a log group; one
metric filter per guard; an alarm on the filter's metric notifying SNS).
:func:`inspect_guard_alarms` decides each guard by *evaluating* the filter patterns against the
CloudTrail event the guard is about (:func:`pattern_matches`), not by looking for the CIS
text: an equivalent pattern passes, one that misses ``ScheduleKeyDeletion`` fails. Only the
JSON filter-pattern subset CIS uses is evaluated (``$.field = value``, ``!=``, ``&&``, ``||``,
parentheses, a trailing ``*`` wildcard,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html); any
other pattern is reported as not evaluated, never as a match.

moto stores metric filters and never emits their metrics, and never evaluates alarms (gaps
``cloudwatch-alarms``): in the sandbox this is a configuration check; AWS does the alerting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from securepipe.clients import shared_client
from securepipe.errors import InvalidParameterError

#: guard id -> (what it is, the CloudTrail events it must match).
GUARD_EVENTS: Mapping[str, tuple[str, tuple[dict[str, str], ...]]] = {
    "kms-key-disable-or-deletion": (
        "CIS 4.7: customer-managed key disabled or scheduled for deletion",
        tuple({"eventSource": "kms.amazonaws.com", "eventName": n}
              for n in ("DisableKey", "ScheduleKeyDeletion"))),
    "s3-bucket-policy-change": (
        "CIS 4.8: S3 bucket policy changes",
        tuple({"eventSource": "s3.amazonaws.com", "eventName": n}
              for n in ("PutBucketPolicy", "DeleteBucketPolicy", "PutBucketAcl"))),
}

#: The CIS filter patterns (as the benchmark and Security Hub's remediation give them).
CIS_PATTERNS: Mapping[str, str] = {
    "kms-key-disable-or-deletion": "{($.eventSource = kms.amazonaws.com) && "
    "(($.eventName = DisableKey) || ($.eventName = ScheduleKeyDeletion))}",
    "s3-bucket-policy-change": "{($.eventSource = s3.amazonaws.com) && "
    "(($.eventName = PutBucketAcl) || ($.eventName = PutBucketPolicy) || "
    "($.eventName = PutBucketCors) || ($.eventName = PutBucketLifecycle) || "
    "($.eventName = PutBucketReplication) || ($.eventName = DeleteBucketPolicy) || "
    "($.eventName = DeleteBucketCors) || ($.eventName = DeleteBucketLifecycle) || "
    "($.eventName = DeleteBucketReplication))}",
}


@dataclass(frozen=True)
class GuardConfig:
    """Names :func:`apply_guard_alarms` uses."""

    log_group: str = "securepipe-cloudtrail"
    logs_role: str = "securepipe-cloudtrail-logs"
    namespace: str = "securepipe/guards"


@dataclass(frozen=True)
class GuardFinding:
    """One guard: ``pass``, ``fail`` or ``error`` with the evidence."""

    guard: str
    status: Literal["pass", "fail", "error"]
    evidence: str


class _Unparsed(Exception):
    pass


_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!=|=|\$\.[\w.]+|\"(?:[^\"\\]|\\.)*\"|[^\s()=!&|\"]+)")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or not m.group(1):
            raise _Unparsed(text[pos:pos + 20])
        out.append(m.group(1))
        pos = m.end()
    return out


def pattern_matches(pattern: str, event: Mapping[str, str]) -> bool | None:
    """Does a CloudWatch Logs JSON filter pattern match ``event`` (flat field -> value)?

    ``None`` when the pattern uses syntax outside the evaluated subset (see the module
    docstring): the caller must not count it as a match.
    """
    text = pattern.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        tokens = _tokens(text[1:-1])
        pos = 0

        def peek() -> str | None:
            return tokens[pos] if pos < len(tokens) else None

        def take() -> str:
            nonlocal pos
            if pos >= len(tokens):
                raise _Unparsed("end of pattern")
            pos += 1
            return tokens[pos - 1]

        def disjunction() -> bool:
            value = conjunction()
            while peek() == "||":
                take()
                value = conjunction() or value
            return value

        def conjunction() -> bool:
            value = term()
            while peek() == "&&":
                take()
                value = term() and value
            return value

        def term() -> bool:
            token = take()
            if token == "(":
                value = disjunction()
                if take() != ")":
                    raise _Unparsed("unbalanced parentheses")
                return value
            if not token.startswith("$."):
                raise _Unparsed(token)
            op, expected = take(), take()
            if op not in ("=", "!=") or expected in ("(", ")", "&&", "||"):
                raise _Unparsed(op)
            if expected.startswith("%"):
                raise _Unparsed("regular expression")  # %regex% values: not evaluated
            if expected.startswith('"'):
                expected = json.loads(expected)
            actual = event.get(token[2:])
            if expected.endswith("*"):
                hit = actual is not None and actual.startswith(expected[:-1])
            else:
                hit = actual == expected
            return hit if op == "=" else (actual is not None and not hit)

        result = disjunction()
        if pos != len(tokens):
            raise _Unparsed("trailing tokens")
        return result
    except (_Unparsed, ValueError):
        return None


def apply_guard_alarms(session: boto3.Session, *, trail_name: str, topic_arn: str,
                       config: GuardConfig | None = None) -> list[str]:
    """Deliver the trail to a log group and alarm on each guard; returns the alarm names.

    Wraps CloudWatch Logs CreateLogGroup/PutMetricFilter
    (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutMetricFilter.html),
    IAM CreateRole (the role CloudTrail assumes to write the log group), CloudTrail UpdateTrail
    (``CloudWatchLogsLogGroupArn``) and CloudWatch PutMetricAlarm. Idempotent.
    """
    cfg = config or GuardConfig()
    if not topic_arn.startswith("arn:") or ":sns:" not in topic_arn:
        raise InvalidParameterError("topic_arn must be an SNS topic ARN")
    logs, iam = shared_client(session, "logs"), shared_client(session, "iam")
    try:
        logs.create_log_group(logGroupName=cfg.log_group)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
            raise
    group_arn = next(g["arn"] for g in logs.describe_log_groups(
        logGroupNamePrefix=cfg.log_group)["logGroups"] if g["logGroupName"] == cfg.log_group)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    try:
        role_arn = iam.create_role(RoleName=cfg.logs_role,
                                   AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            raise
        role_arn = iam.get_role(RoleName=cfg.logs_role)["Role"]["Arn"]
    iam.put_role_policy(RoleName=cfg.logs_role, PolicyName="deliver-to-log-group",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                            "Resource": group_arn}]}))
    shared_client(session, "cloudtrail").update_trail(
        Name=trail_name, CloudWatchLogsLogGroupArn=group_arn, CloudWatchLogsRoleArn=role_arn)
    cw = shared_client(session, "cloudwatch")
    names = []
    for guard, pattern in CIS_PATTERNS.items():
        metric = f"securepipe-{guard}"
        logs.put_metric_filter(
            logGroupName=cfg.log_group, filterName=metric, filterPattern=pattern,
            metricTransformations=[{"metricName": metric, "metricNamespace": cfg.namespace,
                                    "metricValue": "1"}])
        cw.put_metric_alarm(
            AlarmName=metric, AlarmDescription=GUARD_EVENTS[guard][0],
            Namespace=cfg.namespace, MetricName=metric, Statistic="Sum", Period=300,
            EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="notBreaching", ActionsEnabled=True, AlarmActions=[topic_arn])
        names.append(metric)
    return names


def _group_name(arn: str) -> str | None:
    m = re.fullmatch(r"arn:aws[\w-]*:logs:[^:]*:\d{12}:log-group:(.+?)(?::\*)?", arn or "")
    return m.group(1) if m else None


def inspect_guard_alarms(session: boto3.Session) -> list[GuardFinding]:
    """One finding per guard in :data:`GUARD_EVENTS`.

    A guard passes when a logging, multi-region trail delivers to a log group that has a
    metric filter matching every one of the guard's events, and an enabled alarm on that
    filter's metric notifies an SNS topic. Reads CloudTrail DescribeTrails/GetTrailStatus, Logs
    DescribeMetricFilters and CloudWatch DescribeAlarms. A read that fails is ``error``.
    """
    ct = shared_client(session, "cloudtrail")
    try:
        groups = []
        for trail in ct.describe_trails(includeShadowTrails=True)["trailList"]:
            group = _group_name(trail.get("CloudWatchLogsLogGroupArn", ""))
            if group and trail.get("IsMultiRegionTrail") and ct.get_trail_status(
                    Name=trail["TrailARN"]).get("IsLogging"):
                groups.append(group)
        logs = shared_client(session, "logs")
        filters: list[dict[str, Any]] = []
        for group in dict.fromkeys(groups):
            filters += [f for page in logs.get_paginator("describe_metric_filters").paginate(
                logGroupName=group) for f in page["metricFilters"]]
        alarms = [a for page in shared_client(session, "cloudwatch").get_paginator(
            "describe_alarms").paginate(AlarmTypes=["MetricAlarm"]) for a in page["MetricAlarms"]]
    except ClientError as exc:
        return [GuardFinding(g, "error", f"could not evaluate: {exc}") for g in GUARD_EVENTS]
    out = []
    for guard, (title, events) in GUARD_EVENTS.items():
        out.append(_guard(guard, title, events, groups, filters, alarms))
    return out


def _guard(guard: str, title: str, events: Sequence[Mapping[str, str]], groups: Sequence[str],
           filters: Sequence[Mapping[str, Any]],
           alarms: Sequence[Mapping[str, Any]]) -> GuardFinding:
    if not groups:
        return GuardFinding(guard, "fail", f"{title}: no logging multi-region trail delivers "
                            "to a CloudWatch Logs log group, so no metric filter can see it")
    missed: set[str] = {e["eventName"] for e in events}
    unparsed = []
    for f in filters:
        verdicts = [pattern_matches(str(f.get("filterPattern", "")), e) for e in events]
        if None in verdicts:
            unparsed.append(str(f.get("filterName")))
            continue
        if not all(verdicts):
            continue
        for t in f.get("metricTransformations", []):
            for a in alarms:
                if (a.get("Namespace") == t.get("metricNamespace")
                        and a.get("MetricName") == t.get("metricName")
                        and a.get("ActionsEnabled", True)
                        and any(":sns:" in x for x in a.get("AlarmActions", []))):
                    return GuardFinding(guard, "pass", f"{title}: filter {f['filterName']!r} on "
                                        f"{f.get('logGroupName')} matches "
                                        f"{', '.join(sorted(missed))}; alarm "
                                        f"{a['AlarmName']!r} notifies SNS")
        missed = set()  # a matching filter exists, but no alarm
    if not missed:
        return GuardFinding(guard, "fail", f"{title}: a metric filter matches, but no enabled "
                            "alarm on its metric notifies an SNS topic")
    note = f" (patterns not evaluated: {', '.join(unparsed)})" if unparsed else ""
    return GuardFinding(guard, "fail", f"{title}: no metric filter on {', '.join(groups)} "
                        f"matches every one of {', '.join(sorted(missed))}{note}")
