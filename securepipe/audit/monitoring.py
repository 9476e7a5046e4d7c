"""Exfiltration monitoring that can see GetObject volume: applied, then checked from the API.

The common pattern alarms on the S3 storage metric ``NumberOfObjects``. That metric counts the
objects *stored*, once a day: a bulk download leaves it unchanged, so the alarm never fires.
What sees reads (controls, each a finding id):

=========================  =====================================================================
``trail-logging``          a CloudTrail trail is logging (multi-region, log file validation on)
``s3-data-events``         the trail's selectors capture GetObject data events on the bucket
``kms-management-events``  the trail's selectors capture KMS management events (Decrypt, ...)
``s3-request-metrics``     an S3 request-metrics configuration on the bucket (``GetRequests``,
                           ``BytesDownloaded``, 1-minute); opt-in and best effort on AWS
``alarm-get-requests``     a CloudWatch alarm on ``AWS/S3 GetRequests`` (``FilterId`` dimension)
``alarm-bytes-downloaded`` a CloudWatch alarm on ``AWS/S3 BytesDownloaded``
``alarm-delivery``         those alarms notify an SNS topic with a confirmed subscription
``no-storage-metric-alarm`` no exfiltration alarm on ``NumberOfObjects`` (the common pattern)
=========================  =====================================================================

Statuses: ``pass``, ``fail``, ``error`` (could not read the configuration) and
``unverifiable``: moto does not store request-metrics configurations
(``put_bucket_metrics_configuration`` is not implemented: gap ``s3-request-metrics``), so in
the sandbox that check says so instead of passing. The selectors are decided by *evaluating*
them, not by looking for a familiar shape: S3 data events against every object under each data
prefix and every object operation (:func:`prefix_coverage`), KMS against a Decrypt event.

moto never evaluates alarms (gap ``cloudwatch-alarms``): in the sandbox the alerts come from
:mod:`securepipe.audit.detector`, which publishes to the same SNS topic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from securepipe.clients import shared_client
from securepipe.errors import InvalidParameterError
from securepipe.ids import check_session
from securepipe.merge import merge_bucket_policy, merge_policy

Status = Literal["pass", "fail", "error", "unverifiable"]
CONTROLS: tuple[str, ...] = (
    "trail-logging", "s3-data-events", "kms-management-events", "s3-request-metrics",
    "alarm-get-requests", "alarm-bytes-downloaded", "alarm-delivery", "no-storage-metric-alarm",
)
UNVERIFIABLE_METRICS = ("not verifiable in the sandbox: moto does not store request-metrics "
                        "configurations; AWS does")
#: S3's daily storage metrics: they count what is stored, never what is read.
STORAGE_METRICS = frozenset({"NumberOfObjects", "BucketSizeBytes"})


@dataclass(frozen=True)
class MonitoringFinding:
    """One control on one resource (a bucket, or the account's trails/alarms)."""

    control: str
    resource: str
    status: Status
    evidence: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def bucket(self) -> str:
        """Alias of ``resource``, for code written against
        :class:`securepipe.encryption.hardening.Finding`."""
        return self.resource


@dataclass(frozen=True)
class MonitoringConfig:
    """Names and thresholds :func:`apply_monitoring` uses.

    The thresholds are per bucket and per ``period`` seconds; derive them from the detector's
    learned baseline (:meth:`securepipe.audit.detector.Baseline.table`) rather than guessing.
    """

    trail_name: str = "securepipe-data-events"
    trail_prefix: str = "cloudtrail"
    topic_name: str = "securepipe-exfiltration-alerts"
    queue_name: str = "securepipe-exfiltration-alerts"
    filter_id: str = "EntireBucket"
    get_requests_threshold: float = 5000.0
    bytes_downloaded_threshold: float = 2.0 * 1024**3
    period: int = 60
    evaluation_periods: int = 1


@dataclass(frozen=True)
class MonitoringSetup:
    """What :func:`apply_monitoring` created, and what the endpoint would not store."""

    trail_arn: str
    topic_arn: str
    queue_url: str
    queue_arn: str
    subscription_arn: str
    alarm_names: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def trail_bucket_policy_statements(bucket: str, prefix: str, account_id: str, region: str,
                                   trail_name: str) -> list[dict[str, Any]]:
    """The bucket-policy statements CloudTrail needs to deliver logs to ``bucket``
    (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-s3-bucket-policy-for-cloudtrail.html)."""
    source = f"arn:aws:cloudtrail:{region}:{account_id}:trail/{trail_name}"
    return [
        {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow",
         "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:GetBucketAcl",
         "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringEquals": {"aws:SourceArn": source}}},
        {"Sid": "AWSCloudTrailWrite", "Effect": "Allow",
         "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/{prefix}/AWSLogs/{account_id}/*",
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control",
                                        "aws:SourceArn": source}}},
    ]


def data_event_selectors(data_buckets: Sequence[str]) -> list[dict[str, Any]]:
    """Advanced event selectors: S3 object data events (reads and writes) on the data buckets,
    plus all management events (which include every KMS call)."""
    return [
        {"Name": "S3 data events on the voice-data buckets",
         "FieldSelectors": [
             {"Field": "eventCategory", "Equals": ["Data"]},
             {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
             {"Field": "resources.ARN", "StartsWith": [f"arn:aws:s3:::{b}/" for b in data_buckets]},
         ]},
        {"Name": "Management events, KMS included",
         "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
    ]


def _alarm_name(metric: str, bucket: str) -> str:
    return f"securepipe-{metric}-{bucket}"


def apply_monitoring(
    session: boto3.Session, data_buckets: Sequence[str], log_bucket: str, *,
    kms_key_arn: str | None = None, config: MonitoringConfig | None = None,
) -> MonitoringSetup:
    """Create the trail, request metrics, alarms, SNS topic and its SQS subscriber.

    Wraps CloudTrail CreateTrail/PutEventSelectors/StartLogging
    (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_PutEventSelectors.html),
    S3 PutBucketMetricsConfiguration
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketMetricsConfiguration.html),
    CloudWatch PutMetricAlarm
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html),
    SNS CreateTopic/Subscribe and SQS CreateQueue/SetQueueAttributes. Idempotent.

    With ``kms_key_arn`` the trail's log files are encrypted with it (on AWS the key policy must
    let CloudTrail use it). The log bucket gets the policy statements CloudTrail needs and the
    queue the statement SNS needs, each merged by Sid into the policy it already has
    (:mod:`securepipe.merge`), so a re-run, in any order with the kit's other apply functions,
    removes nothing another writer added.
    """
    check_session(session)
    cfg = config or MonitoringConfig()
    if isinstance(data_buckets, str) or not data_buckets:
        raise InvalidParameterError("at least one data bucket is needed")
    if log_bucket in data_buckets:
        raise InvalidParameterError("the trail's log bucket must not be a data bucket (a trail "
                                    "logging reads of its own bucket feeds on itself)")
    notes: list[str] = []
    identity = shared_client(session, "sts").get_caller_identity()
    account = str(identity["Account"])
    region = session.region_name or "us-east-1"

    s3 = shared_client(session, "s3")
    merge_bucket_policy(s3, log_bucket, trail_bucket_policy_statements(
        log_bucket, cfg.trail_prefix, account, region, cfg.trail_name))

    ct = shared_client(session, "cloudtrail")
    trail_kwargs: dict[str, Any] = {
        "Name": cfg.trail_name, "S3BucketName": log_bucket, "S3KeyPrefix": cfg.trail_prefix,
        "IsMultiRegionTrail": True, "IncludeGlobalServiceEvents": True,
        "EnableLogFileValidation": True}
    if kms_key_arn:
        trail_kwargs["KmsKeyId"] = kms_key_arn
    # An existing trail is updated, never re-created: UpdateTrail leaves the settings it is not
    # given (the log-group delivery apply_guard_alarms adds) as they are. AWS answers CreateTrail
    # on an existing name with TrailAlreadyExistsException; moto instead replaces the trail,
    # dropping that delivery, so ask first (GetTrail) rather than rely on the error.
    # https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_UpdateTrail.html
    try:
        ct.get_trail(Name=cfg.trail_name)
        exists = True
    except ClientError as exc:
        if _code(exc) != "TrailNotFoundException":
            raise
        exists = False
    try:
        if exists:
            trail_arn = ct.update_trail(**trail_kwargs)["TrailARN"]
        else:
            trail_arn = ct.create_trail(**trail_kwargs)["TrailARN"]
    except ClientError as exc:
        if _code(exc) != "TrailAlreadyExistsException":
            raise
        trail_arn = ct.update_trail(**trail_kwargs)["TrailARN"]
    ct.put_event_selectors(TrailName=cfg.trail_name,
                           AdvancedEventSelectors=data_event_selectors(data_buckets))
    ct.start_logging(Name=cfg.trail_name)

    for bucket in data_buckets:
        try:
            s3.put_bucket_metrics_configuration(
                Bucket=bucket, Id=cfg.filter_id, MetricsConfiguration={"Id": cfg.filter_id})
        except ClientError as exc:
            if _code(exc) not in ("IllegalLocationConstraintException", "NotImplemented"):
                raise
            notes.append(f"{bucket}: PutBucketMetricsConfiguration not accepted by this endpoint "
                         f"({_code(exc)}); {UNVERIFIABLE_METRICS}")

    sns = shared_client(session, "sns")
    sqs = shared_client(session, "sqs")
    topic_arn = sns.create_topic(Name=cfg.topic_name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=cfg.queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_policy = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(merge_policy(
        json.loads(queue_policy) if queue_policy else None, [{
            "Sid": "AllowAlertTopic", "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]))})
    subscription_arn = sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"}, ReturnSubscriptionArn=True)["SubscriptionArn"]

    cw = shared_client(session, "cloudwatch")
    names: list[str] = []
    for bucket in data_buckets:
        for metric, threshold in (("GetRequests", cfg.get_requests_threshold),
                                  ("BytesDownloaded", cfg.bytes_downloaded_threshold)):
            name = _alarm_name(metric, bucket)
            cw.put_metric_alarm(
                AlarmName=name,
                AlarmDescription=f"bulk reads from {bucket}: {metric} above {threshold:,.0f} "
                                 f"per {cfg.period} s (S3 request metrics)",
                Namespace="AWS/S3", MetricName=metric, Statistic="Sum",
                Dimensions=[{"Name": "BucketName", "Value": bucket},
                            {"Name": "FilterId", "Value": cfg.filter_id}],
                Period=cfg.period, EvaluationPeriods=cfg.evaluation_periods,
                Threshold=float(threshold), ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching", ActionsEnabled=True, AlarmActions=[topic_arn])
            names.append(name)
    return MonitoringSetup(trail_arn, topic_arn, queue_url, queue_arn, subscription_arn,
                           tuple(names), tuple(notes))


# -- inspection --------------------------------------------------------------------------------


def _selector_matches(field_selectors: Iterable[Mapping[str, Any]],
                      event: Mapping[str, str]) -> bool:
    """Does one advanced event selector (all its field selectors) match a probe event?"""
    for fs in field_selectors:
        value = event.get(str(fs.get("Field")))
        if value is None:
            return False  # a field the probe does not model: not provably captured
        tests = (
            ("Equals", lambda v, x: v == x, True), ("StartsWith", str.startswith, True),
            ("EndsWith", str.endswith, True), ("NotEquals", lambda v, x: v == x, False),
            ("NotStartsWith", str.startswith, False), ("NotEndsWith", str.endswith, False),
        )
        for key, test, positive in tests:
            values = fs.get(key)
            if not values:
                continue
            hit = any(test(value, str(x)) for x in values)
            if hit != positive:
                return False
    return True


def _captures(selectors: Mapping[str, Any], event: Mapping[str, str]) -> bool:
    """Would a trail with these selectors log the probe event? (advanced or classic selectors)"""
    advanced = selectors.get("AdvancedEventSelectors") or []
    if advanced:
        return any(_selector_matches(sel.get("FieldSelectors", []), event) for sel in advanced)
    for sel in selectors.get("EventSelectors") or []:
        rw = sel.get("ReadWriteType", "All")
        if event["readOnly"] == "true" and rw == "WriteOnly":
            continue
        if event["readOnly"] == "false" and rw == "ReadOnly":
            continue
        if event["eventCategory"] == "Management":
            excluded = sel.get("ExcludeManagementEventSources") or []
            if sel.get("IncludeManagementEvents", True) and event["eventSource"] not in excluded:
                return True
            continue
        for res in sel.get("DataResources") or []:
            if res.get("Type") != event["resources.type"]:
                continue
            if any(event["resources.ARN"].startswith(v) or v in ("arn:aws:s3", "arn:aws:s3:::")
                   for v in res.get("Values") or []):
                return True
    return False


#: The object operations whose data events must be logged on every data prefix, with the
#: ``readOnly`` value CloudTrail records for each.
DATA_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("GetObject", "true"), ("PutObject", "false"), ("DeleteObject", "false"))


def _arn_set_covered(fs: Mapping[str, Any], arn_prefix: str) -> bool:
    """Does a ``resources.ARN`` field selector match *every* ARN that starts with
    ``arn_prefix`` (every object under a prefix), not just one probe key?

    Operators (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_AdvancedFieldSelector.html):
    ``StartsWith v`` covers the set when ``v`` is a prefix of ``arn_prefix``; ``Equals`` and
    ``EndsWith`` name single objects or suffixes and never cover a whole prefix;
    ``NotStartsWith v`` leaves it whole only when no key under ``arn_prefix`` can start with
    ``v`` (neither string is a prefix of the other); ``NotEquals v`` and ``NotEndsWith v``
    exclude some key under any prefix (``NotEquals`` only if ``v`` lies under it).
    """
    if fs.get("Equals") or fs.get("EndsWith"):
        return False
    starts = [str(v) for v in fs.get("StartsWith") or []]
    if starts and not any(arn_prefix.startswith(v) for v in starts):
        return False
    for v in (str(x) for x in fs.get("NotStartsWith") or []):
        if v.startswith(arn_prefix) or arn_prefix.startswith(v):
            return False
    if any(str(v).startswith(arn_prefix) for v in fs.get("NotEquals") or []):
        return False
    return not fs.get("NotEndsWith")


def _selector_covers(field_selectors: Iterable[Mapping[str, Any]], arn_prefix: str,
                     event: Mapping[str, str]) -> bool:
    """Does one advanced event selector log ``event`` for every object under ``arn_prefix``?
    A field the event does not model (``userIdentity.arn``, ``errorCode``...) means some
    events are filtered out: not covered."""
    for fs in field_selectors:
        if fs.get("Field") == "resources.ARN":
            if not _arn_set_covered(fs, arn_prefix):
                return False
        elif not _selector_matches([fs], event):
            return False
    return True


def prefix_coverage(selectors: Mapping[str, Any], arn_prefix: str,
                    operation: str, read_only: str) -> bool:
    """Would a trail with these selectors (GetEventSelectors output) log ``operation`` on every
    object whose ARN starts with ``arn_prefix``? Advanced selectors (an event is logged when
    any selector matches, all of its field selectors at once) or, without them, classic ones
    (``ReadWriteType``; ``DataResources`` of type ``AWS::S3::Object`` match by ARN prefix:
    https://docs.aws.amazon.com/awscloudtrail/latest/userguide/logging-data-events-with-cloudtrail.html).
    One selector must cover the whole prefix; coverage pieced together from several selectors
    is not credited (reported as not logged: fail closed)."""
    event = {"eventCategory": "Data", "resources.type": "AWS::S3::Object",
             "readOnly": read_only, "eventName": operation, "eventSource": "s3.amazonaws.com",
             "eventType": "AwsApiCall"}
    advanced = selectors.get("AdvancedEventSelectors") or []
    if advanced:
        return any(_selector_covers(sel.get("FieldSelectors", []), arn_prefix, event)
                   for sel in advanced)
    for sel in selectors.get("EventSelectors") or []:
        rw = sel.get("ReadWriteType", "All")
        if (read_only == "true" and rw == "WriteOnly") or (read_only == "false"
                                                           and rw == "ReadOnly"):
            continue
        for res in sel.get("DataResources") or []:
            if res.get("Type") == "AWS::S3::Object" and any(
                    arn_prefix.startswith(str(v)) for v in res.get("Values") or []):
                return True
    return False


_PROBE_KMS = {"eventCategory": "Management", "eventSource": "kms.amazonaws.com",
              "readOnly": "true", "eventName": "Decrypt"}


def inspect_monitoring(
    session: boto3.Session, data_buckets: Sequence[str], *, config: MonitoringConfig | None = None,
    prefixes: Mapping[str, Sequence[str]] | None = None,
) -> list[MonitoringFinding]:
    """Findings for every control in :data:`CONTROLS`, read back through the API.

    ``prefixes`` (bucket -> its data prefixes; default: the whole bucket) is what
    ``s3-data-events`` must see logged: every object under each prefix, for each operation in
    :data:`DATA_OPERATIONS`, decided from the selectors themselves (:func:`prefix_coverage`),
    not from one probe key; the evidence names each prefix and operation that is not logged.

    Account-wide controls (trail, KMS events, delivery, storage-metric alarms) are reported once
    with resource ``account``; the others once per data bucket. A configuration that cannot be
    read is ``error``; the request-metrics configuration, which moto does not store, is
    ``unverifiable`` in the sandbox. Nothing passes by default.
    """
    cfg = config or MonitoringConfig()
    findings: list[MonitoringFinding] = []

    def add(control: str, resource: str, status: Status, evidence: str) -> None:
        findings.append(MonitoringFinding(control, resource, status, evidence))

    findings.extend(_inspect_trails(session, data_buckets, prefixes))

    s3 = shared_client(session, "s3")
    for bucket in data_buckets:
        try:
            out = s3.get_bucket_metrics_configuration(Bucket=bucket, Id=cfg.filter_id)
            conf = out.get("MetricsConfiguration") or {}
            if not conf:
                add("s3-request-metrics", bucket, "unverifiable",
                    f"{UNVERIFIABLE_METRICS} (GetBucketMetricsConfiguration answered with an "
                    "empty configuration)")
            else:
                add("s3-request-metrics", bucket, "pass",
                    f"metrics configuration {conf.get('Id')!r}, filter "
                    f"{conf.get('Filter') or 'entire bucket'}")
        except ClientError as exc:
            if _code(exc) == "NoSuchConfiguration":
                add("s3-request-metrics", bucket, "fail",
                    f"no request-metrics configuration {cfg.filter_id!r}: GetRequests and "
                    "BytesDownloaded are never published")
            else:
                add("s3-request-metrics", bucket, "error", f"could not evaluate: {exc}")

    try:
        alarms = [a for page in shared_client(session, "cloudwatch").get_paginator(
            "describe_alarms").paginate(AlarmTypes=["MetricAlarm"]) for a in page["MetricAlarms"]]
    except ClientError as exc:
        for bucket in data_buckets:
            for control in ("alarm-get-requests", "alarm-bytes-downloaded"):
                add(control, bucket, "error", f"could not evaluate: {exc}")
        add("alarm-delivery", "account", "error", f"could not evaluate: {exc}")
        add("no-storage-metric-alarm", "account", "error", f"could not evaluate: {exc}")
        return findings

    topics: set[str] = set()
    for bucket in data_buckets:
        for control, metric in (("alarm-get-requests", "GetRequests"),
                                ("alarm-bytes-downloaded", "BytesDownloaded")):
            good, why = _request_alarm(alarms, bucket, metric)
            if good is None:
                add(control, bucket, "fail", why)
            else:
                topics.update(a for a in good.get("AlarmActions", []) if ":sns:" in a)
                add(control, bucket, "pass", why)
    findings.append(_delivery(session, topics))

    # Any storage-metric alarm is flagged, with or without a BucketName dimension: the article's
    # alarm has none, and it is exactly as blind to reads as one scoped to a data bucket.
    wrong = [a for a in alarms if a.get("Namespace") == "AWS/S3"
             and a.get("MetricName") in STORAGE_METRICS
             and (_dimension(a, "BucketName") in (*data_buckets, None) or not data_buckets)]
    if wrong:
        add("no-storage-metric-alarm", "account", "fail",
            "alarm(s) " + ", ".join(repr(a["AlarmName"]) for a in wrong) + " watch "
            "a daily storage metric of S3 (objects or bytes stored): a bulk GetObject "
            "download never moves it. Alarm on GetRequests/BytesDownloaded (request metrics) or "
            "on CloudTrail GetObject data events instead")
    else:
        add("no-storage-metric-alarm", "account", "pass",
            "no alarm relies on NumberOfObjects to detect bulk reads")
    order = {c: i for i, c in enumerate(CONTROLS)}
    return sorted(findings, key=lambda f: (order[f.control], f.resource))


def _inspect_trails(session: boto3.Session, data_buckets: Sequence[str],
                    prefixes: Mapping[str, Sequence[str]] | None = None
                    ) -> list[MonitoringFinding]:
    out: list[MonitoringFinding] = []
    ct = shared_client(session, "cloudtrail")
    try:
        trails = ct.describe_trails(includeShadowTrails=True)["trailList"]
        info = []
        for trail in trails:
            arn = trail["TrailARN"]
            status = ct.get_trail_status(Name=arn)
            selectors = ct.get_event_selectors(TrailName=arn)
            info.append((trail, bool(status.get("IsLogging")), selectors))
    except ClientError as exc:
        for control, res in (("trail-logging", "account"), ("kms-management-events", "account"),
                             *(("s3-data-events", b) for b in data_buckets)):
            out.append(MonitoringFinding(control, res, "error", f"could not evaluate: {exc}"))
        return out
    logging_trails = [(t, s) for t, on, s in info if on]
    good = [t for t, _ in logging_trails
            if t.get("IsMultiRegionTrail") and t.get("LogFileValidationEnabled")]
    if good:
        out.append(MonitoringFinding("trail-logging", "account", "pass",
                                     f"trail {good[0]['Name']!r} is logging, multi-region, with "
                                     "log file validation"))
    elif logging_trails:
        out.append(MonitoringFinding("trail-logging", "account", "fail",
                                     "a trail is logging but not multi-region with log file "
                                     "validation"))
    else:
        out.append(MonitoringFinding("trail-logging", "account", "fail",
                                     f"no trail is logging ({len(info)} trail(s) configured)"))
    kms = [t["Name"] for t, s in logging_trails if _captures(s, _PROBE_KMS)]
    out.append(MonitoringFinding(
        "kms-management-events", "account", "pass" if kms else "fail",
        f"KMS Decrypt events logged by {kms}" if kms else
        "no logging trail captures KMS management events (Decrypt, GenerateDataKey)"))
    for bucket in data_buckets:
        wanted = list((prefixes or {}).get(bucket) or ("",))
        missing: dict[str, list[str]] = {}
        by: set[str] = set()
        for prefix in wanted:
            arn = f"arn:aws:s3:::{bucket}/{prefix}"
            for op, read_only in DATA_OPERATIONS:
                hits = [t["Name"] for t, s in logging_trails
                        if prefix_coverage(s, arn, op, read_only)]
                by.update(hits)
                if not hits:
                    missing.setdefault(prefix or "(whole bucket)", []).append(op)
        where = ", ".join(p or "(whole bucket)" for p in wanted)
        ops = "/".join(op for op, _ in DATA_OPERATIONS)
        if missing:
            out.append(MonitoringFinding(
                "s3-data-events", bucket, "fail", "not logged by any logging trail: " + "; ".join(
                    f"{p} {', '.join(o)}" for p, o in missing.items())
                + f" (data prefixes {where}; data events are off by default)"))
        else:
            out.append(MonitoringFinding(
                "s3-data-events", bucket, "pass",
                f"{ops} data events on every object under {where} logged by {sorted(by)}"))
    return out


def _dimension(alarm: Mapping[str, Any], name: str) -> str | None:
    for dim in alarm.get("Dimensions") or []:
        if dim.get("Name") == name:
            return str(dim.get("Value"))
    return None


def _request_alarm(alarms: Sequence[Mapping[str, Any]], bucket: str,
                   metric: str) -> tuple[Mapping[str, Any] | None, str]:
    candidates = [a for a in alarms if a.get("Namespace") == "AWS/S3"
                  and a.get("MetricName") == metric and _dimension(a, "BucketName") == bucket]
    if not candidates:
        return None, f"no alarm on AWS/S3 {metric} for this bucket"
    problems = []
    for alarm in candidates:
        issues = []
        if _dimension(alarm, "FilterId") is None:
            issues.append("no FilterId dimension (request metrics are published per filter)")
        if not alarm.get("ActionsEnabled", True) or not any(
                ":sns:" in a for a in alarm.get("AlarmActions", [])):
            issues.append("no enabled SNS alarm action")
        if int(alarm.get("Period", 0)) > 300:
            issues.append(f"period {alarm.get('Period')} s is too coarse for a burst")
        if not str(alarm.get("ComparisonOperator", "")).startswith("GreaterThan"):
            issues.append(f"comparison {alarm.get('ComparisonOperator')} does not fire on a rise")
        if not issues:
            return alarm, (f"alarm {alarm['AlarmName']!r}: {metric} Sum > "
                           f"{alarm.get('Threshold'):,.0f} per {alarm.get('Period')} s, FilterId="
                           f"{_dimension(alarm, 'FilterId')}")
        problems.append(f"{alarm['AlarmName']!r}: " + "; ".join(issues))
    return None, "; ".join(problems)


def _delivery(session: boto3.Session, topics: set[str]) -> MonitoringFinding:
    if not topics:
        return MonitoringFinding("alarm-delivery", "account", "fail",
                                 "no request-metric alarm notifies an SNS topic")
    sns = shared_client(session, "sns")
    reached: list[str] = []
    try:
        for topic in sorted(topics):
            subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
            for sub in subs:
                arn = sub.get("SubscriptionArn", "")
                if arn and arn != "PendingConfirmation":
                    reached.append(f"{sub.get('Protocol')}:{sub.get('Endpoint')}")
    except ClientError as exc:
        return MonitoringFinding("alarm-delivery", "account", "error", f"could not evaluate: {exc}")
    if not reached:
        return MonitoringFinding("alarm-delivery", "account", "fail",
                                 f"topic(s) {sorted(topics)} have no confirmed subscription")
    return MonitoringFinding("alarm-delivery", "account", "pass",
                             f"alarms notify {sorted(topics)}, delivered to {reached}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
