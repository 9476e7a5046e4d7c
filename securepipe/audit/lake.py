"""The fleet detector's rules as SQL over the CloudTrail table: Athena (Trino) in production,
DuckDB locally over the same gzipped log files.

Every rule of :data:`securepipe.audit.fleet.FLEET_RULES` is one windowed aggregate (see that
module's docstring), so each becomes one query, written **once** here in the Trino dialect and
rendered per engine with sqlglot (``trino``/``athena`` and ``duckdb``):

* :func:`view_sql`: the normalising view ``securepipe_s3_events`` over the CloudTrail table whose
  DDL AWS documents for Athena (:data:`ATHENA_DDL`; ``requestparameters`` and
  ``additionaleventdata`` are JSON strings, ``useridentity`` a struct): the role (from
  ``sessioncontext.sessionissuer.arn``) not the session, the kind (read/probe/copy...), bucket,
  key, object and prefix (a copy reads its *source*), bytes tolerant of floats and numeric
  strings, the source attributes (network, user-agent family, authentication method), and a
  ``reject`` reason for a record the Python normaliser would reject (same wording), so
  :func:`reject_counts_sql` counts them by reason; and :func:`sizes_sql`, the bucket sizes
  relative rules divide by (distinct objects and prefixes in the 24-hour windows; for the
  pipeline's fresh reads, the distinct objects written in them);
* :func:`rule_sql`: one rule with its thresholds filled in from a fitted
  :class:`~securepipe.audit.fleet.FleetBaseline` (learned thresholds, bucket sizes, bulk readers,
  known principals, sources, actions and copy destinations as ``VALUES`` tables). It returns, per
  group and window (both phases), the first event that crosses the threshold;
* :func:`merge_phases`: the two phases of one episode reported once, exactly as the Python
  detector does. This step is a sequential scan (whether a window is reported depends on which
  overlapping window was reported before it), not an aggregate, so it runs over the query's
  result rows (a handful) in Python, for DuckDB and Athena results alike.

Ordering: within one ``eventTime`` second the running aggregate needs an order; locally that is
the order of records in the files (``seq``, as the Python detector reads them), on Athena the
``eventid``. Alert keys (rule, principal, scope, window, alert second) do not depend on it except
for relative rules whose bucket size grows within the crossing second.

Where the SQL and the Python path cannot agree by construction: the SQL has no arrival order, so
its alerts are the in-order answer, which :class:`~securepipe.audit.fleet.FleetDetector` gives for
events up to ``lag_s`` late (later ones it evaluates late and counts in ``late``); records whose
fields have the wrong JSON type are rejected by the Python decoder as ``wrong type: ...`` while
the table's JSON SerDe reads them leniently; ``eventTime`` must be ISO 8601 with a ``T`` and a
zone (Python's ``fromisoformat`` also takes a space).

CloudTrail table DDL: https://docs.aws.amazon.com/athena/latest/ug/create-cloudtrail-table.html.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securepipe.audit.fleet import (
    DEFAULT_OBJECT_BYTES,
    FLEET_RULES,
    FRESH_S,
    SIZE_MIN_SHARE,
    SIZE_WINDOW_S,
    FleetBaseline,
    FleetRule,
)
from securepipe.errors import InvalidParameterError

VIEW = "securepipe_s3_events"
TABLE = "cloudtrail_logs"
DIALECTS = ("athena", "trino", "duckdb")

#: The CloudTrail table as AWS documents it for Athena (Hive DDL, run once in Athena; it is not
#: Trino SQL). ``LOCATION`` is filled in by :func:`athena_ddl`.
ATHENA_DDL = """CREATE EXTERNAL TABLE {table} (
    eventversion STRING,
    useridentity STRUCT<
        type: STRING, principalid: STRING, arn: STRING, accountid: STRING,
        invokedby: STRING, accesskeyid: STRING, username: STRING,
        onbehalfof: STRUCT<userid: STRING, identitystorearn: STRING>,
        sessioncontext: STRUCT<
            attributes: STRUCT<mfaauthenticated: STRING, creationdate: STRING>,
            sessionissuer: STRUCT<type: STRING, principalid: STRING, arn: STRING,
                                  accountid: STRING, username: STRING>,
            ec2roledelivery: STRING,
            webidfederationdata: STRUCT<federatedprovider: STRING,
                                        attributes: MAP<STRING, STRING>>>>,
    eventtime STRING,
    eventsource STRING,
    eventname STRING,
    awsregion STRING,
    sourceipaddress STRING,
    useragent STRING,
    errorcode STRING,
    errormessage STRING,
    requestparameters STRING,
    responseelements STRING,
    additionaleventdata STRING,
    requestid STRING,
    eventid STRING,
    readonly STRING,
    resources ARRAY<STRUCT<arn: STRING, accountid: STRING, type: STRING>>,
    eventtype STRING,
    apiversion STRING,
    recipientaccountid STRING,
    serviceeventdetails STRING,
    sharedeventid STRING,
    vpcendpointid STRING,
    vpcendpointaccountid STRING,
    eventcategory STRING,
    tlsdetails STRUCT<tlsversion: STRING, ciphersuite: STRING,
                      clientprovidedhostheader: STRING>
)
COMMENT 'CloudTrail table (S3 data events) for securepipe detection'
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION '{location}'
TBLPROPERTIES ('classification'='cloudtrail');"""

_KIND_CASE = """CASE eventname
        WHEN 'GetObject' THEN 'get' WHEN 'GetObjectTorrent' THEN 'get'
        WHEN 'HeadObject' THEN 'head' WHEN 'GetObjectAttributes' THEN 'head'
        WHEN 'GetObjectTagging' THEN 'head' WHEN 'GetObjectAcl' THEN 'head'
        WHEN 'ListObjects' THEN 'list' WHEN 'ListObjectsV2' THEN 'list'
        WHEN 'ListObjectVersions' THEN 'list' WHEN 'ListMultipartUploads' THEN 'list'
        WHEN 'ListParts' THEN 'list'
        WHEN 'CopyObject' THEN 'copy' WHEN 'UploadPartCopy' THEN 'copy'
        WHEN 'SelectObjectContent' THEN 'select'
        WHEN 'RestoreObject' THEN 'restore'
        WHEN 'PutObject' THEN 'write' WHEN 'CompleteMultipartUpload' THEN 'write'
        WHEN 'Decrypt' THEN 'decrypt' WHEN 'GenerateDataKey' THEN 'decrypt'
    END"""
# an event the view reads: an S3 kind from an S3 source, or a KMS data-key release from KMS
_SOURCE_OK = """(kind = 'decrypt' AND eventsource = 'kms.amazonaws.com'
                 OR kind <> 'decrypt'
                    AND eventsource IN ('s3.amazonaws.com', 's3express.amazonaws.com'))"""

# The view, in Trino SQL. {order}: the column ordering records within one second.
_VIEW = r"""
CREATE OR REPLACE VIEW {view} AS
WITH src AS (
    SELECT
        {order} AS seq,
        eventname,
        eventsource,
        {kind} AS kind,
        CASE WHEN regexp_like(eventtime,
                 '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\.[0-9]{{1,6}})?(Z|[+-][0-9]{{2}}:[0-9]{{2}})$')
             THEN CAST(floor(to_unixtime(try(from_iso8601_timestamp(eventtime))) * 1000) AS BIGINT)
        END AS t_ms,
        useridentity.type AS id_type,
        nullif(useridentity.arn, '') AS id_arn,
        useridentity.accountid AS id_account,
        useridentity.principalid AS id_principal,
        useridentity.invokedby AS id_invoked,
        nullif(useridentity.sessioncontext.sessionissuer.arn, '') AS issuer,
        useridentity IS NULL AS no_identity,
        errorcode IS NOT NULL AS denied,
        json_extract_scalar(requestparameters, '$.bucketName') AS req_bucket,
        json_extract_scalar(requestparameters, '$.key') AS req_key,
        json_extract_scalar(requestparameters, '$.versionId') AS req_version,
        coalesce(element_at(filter(resources, r -> strpos(r.arn, 'arn:') = 1
                                                  AND strpos(r.arn, ':kms:') > 0), 1).arn,
                 nullif(json_extract_scalar(requestparameters, '$.keyId'), '')) AS kms_key,
        split_part(json_extract_scalar(requestparameters, '$["x-amz-copy-source"]'), '?', 1)
            AS copy_source,
        json_extract_scalar(requestparameters, '$["x-amz-copy-source"]') AS copy_source_raw,
        additionaleventdata IS NOT NULL AND json_extract(additionaleventdata, '$') IS NOT NULL
            AS has_extra,
        json_extract_scalar(additionaleventdata, '$.bytesTransferredOut') AS bytes_text,
        json_extract_scalar(additionaleventdata, '$.AuthenticationMethod') AS auth_method,
        sourceipaddress AS ip,
        vpcendpointid AS vpce,
        vpcendpointaccountid AS vpce_account,
        useragent AS ua,
        recipientaccountid,
        resources
    FROM {table}
),
named AS (
    SELECT src.*,
        CASE
            WHEN id_type = 'AssumedRole' AND issuer IS NOT NULL THEN issuer
            WHEN id_type = 'AssumedRole' AND strpos(id_arn, ':assumed-role/') > 0
                THEN ''  -- the role is rebuilt from the session ARN below
            WHEN id_type = 'AssumedRole' THEN NULL
            WHEN id_type = 'AWSService' THEN 'service:' || coalesce(id_invoked, 'unknown')
            WHEN id_type IN ('Anonymous', 'Unknown')
                 OR id_account IN ('anonymous', 'ANONYMOUS_PRINCIPAL') THEN 'anonymous'
            WHEN id_arn IS NOT NULL THEN id_arn
            WHEN id_type = 'AWSAccount' THEN
                'account:' || coalesce(nullif(id_account, ''), nullif(id_principal, ''), 'unknown')
            WHEN nullif(id_type, '') IS NOT NULL THEN
                id_type || ':' || coalesce(nullif(id_principal, ''), 'unknown')
        END AS principal_raw,
        CASE WHEN id_type = 'AssumedRole' THEN
            CASE WHEN id_arn IS NOT NULL THEN regexp_extract(id_arn, '[^/]*$')
                 ELSE regexp_extract(coalesce(id_principal, ''), '[^:]*$') END
            ELSE '' END AS session,
        -- percent-decoding only, as Python's unquote: a '+' stays a '+'
        CASE WHEN kind = 'copy' THEN url_decode(replace(copy_source, '+', '%2B')) END
            AS copy_from,
        CASE WHEN NOT has_extra OR bytes_text IS NULL THEN 0E0
             WHEN bytes_text IN ('true', 'false') THEN NULL
             ELSE try_cast(bytes_text AS DOUBLE) END AS bytes_num
    FROM src
),
fixed AS (
    SELECT named.*,
        CASE WHEN id_type = 'AssumedRole' AND issuer IS NULL
                  AND strpos(id_arn, ':assumed-role/') > 0 THEN
            'arn:aws:iam::' || regexp_extract(id_arn, '([^:]*):assumed-role/', 1) || ':role/'
            || CASE WHEN strpos(regexp_extract(id_arn, ':assumed-role/(.*)$', 1), '/') > 0
                    THEN regexp_extract(id_arn, ':assumed-role/(.*)/[^/]*$', 1)
                    ELSE regexp_extract(id_arn, ':assumed-role/(.*)$', 1) END
        ELSE principal_raw END AS principal,
        CASE WHEN kind = 'copy' THEN element_at(filter(resources,
            r -> r.type = 'AWS::S3::Bucket' AND r.arn = 'arn:aws:s3:::' || req_bucket), 1)
            .accountid END AS dest_owner,
        CASE WHEN kind = 'copy' THEN
            regexp_extract(regexp_replace(copy_from, '^/+', ''), '^([^/]*)/', 1) END AS copy_bucket,
        CASE WHEN kind = 'copy' THEN
            regexp_extract(regexp_replace(copy_from, '^/+', ''), '^[^/]*/(.*)$', 1) END AS copy_key
    FROM named
),
checked AS (
    SELECT fixed.*,
        CASE
            WHEN eventname IS NULL THEN 'eventName missing'
            WHEN kind IS NULL OR eventsource IS NULL OR NOT {source_ok} THEN NULL
            WHEN t_ms IS NULL OR t_ms < 0 THEN 'eventTime missing or not an ISO-8601 UTC time'
            WHEN no_identity THEN 'userIdentity missing'
            WHEN principal IS NULL AND id_type = 'AssumedRole'
                THEN 'userIdentity of an AssumedRole names no role'
            WHEN principal IS NULL THEN 'userIdentity has neither a type nor an arn'
            WHEN kind = 'decrypt' AND kms_key IS NULL THEN 'the KMS key is not named'
            WHEN kind = 'decrypt' THEN NULL
            WHEN nullif(req_bucket, '') IS NULL THEN 'requestParameters.bucketName missing'
            WHEN kind = 'copy' AND nullif(copy_source, '') IS NULL
                THEN 'a copy without x-amz-copy-source'
            WHEN kind = 'copy' AND strpos(regexp_replace(copy_from, '^/+', ''), '/') = 0
                THEN 'x-amz-copy-source is not bucket/key'
            WHEN kind NOT IN ('copy', 'list') AND nullif(req_key, '') IS NULL
                THEN 'requestParameters.key missing'
            -- NaN, infinities and negatives fail
            WHEN has_extra
                 AND NOT coalesce(bytes_num >= 0E0 AND bytes_num <= 1.7976931348623157E308, FALSE)
                THEN 'bytesTransferredOut is not a non-negative number'
        END AS reject,
        eventname IS NOT NULL
            AND (kind IS NULL OR eventsource IS NULL OR NOT {source_ok})
            AS ignored
    FROM fixed
)
SELECT
    seq,
    t_ms,
    principal,
    session,
    kind,
    denied,
    CASE WHEN kind = 'decrypt' THEN 0
         WHEN reject IS NULL AND NOT ignored THEN CAST(floor(bytes_num) AS BIGINT) END AS bytes,
    CASE WHEN kind = 'decrypt' THEN kms_key  -- the key stands where a bucket would
         WHEN kind = 'copy' THEN copy_bucket
         -- through an access point (alias or ARN): the bucket resource behind it
         WHEN req_bucket LIKE '%-s3alias' OR req_bucket LIKE 'arn:%'
              THEN coalesce(substr(element_at(filter(resources, r -> r.type = 'AWS::S3::Bucket'
                  AND r.arn LIKE 'arn:aws:s3:::%'), 1).arn, 14), req_bucket)
         ELSE req_bucket END AS bucket,
    CASE WHEN kind = 'decrypt' THEN NULL
         WHEN kind = 'copy' THEN nullif(copy_key, '') ELSE nullif(req_key, '') END AS obj_key,
    CASE WHEN kind = 'copy' THEN req_bucket END AS dest,
    CASE WHEN kind = 'decrypt' THEN FALSE
         WHEN kind = 'copy' THEN strpos(coalesce(copy_source_raw, ''), 'versionId=') > 0
         ELSE coalesce(nullif(req_version, ''), '') <> '' END AS versioned,
    kind = 'copy' AND dest_owner IS NOT NULL
        AND (recipientaccountid IS NULL OR dest_owner <> recipientaccountid) AS foreign_dest,
    CASE WHEN nullif(vpce, '') IS NOT NULL AND nullif(vpce_account, '') IS NOT NULL
              AND nullif(recipientaccountid, '') IS NOT NULL AND vpce_account <> recipientaccountid
             THEN 'vpce-foreign:' || vpce_account || ':' || vpce
         WHEN nullif(vpce, '') IS NOT NULL THEN 'vpce:' || vpce
         WHEN nullif(ip, '') IS NULL THEN 'unknown'
         WHEN regexp_like(ip, '^[0-9][^.]*\.[^.]*\.[^.]*\.[^.]*$')
             THEN 'ip:' || split_part(ip, '.', 1) || '.' || split_part(ip, '.', 2)
         WHEN strpos(ip, ':') > 0
             THEN 'ip6:' || regexp_extract(ip, '^([^:]*(:[^:]*(:[^:]*)?)?)', 1)
         ELSE 'aws' END AS network,
    coalesce(nullif(lower(substr(
        regexp_extract(coalesce(ua, ''), '^\[*\s*([^/ \],]*)', 1), 1, 40)), ''), 'none') AS agent,
    CASE WHEN kind = 'decrypt' THEN 'none'
         WHEN auth_method = 'AuthHeader' THEN 'AuthHeader'
         WHEN auth_method = 'QueryString' THEN 'QueryString' ELSE 'none' END AS auth,
    reject,
    ignored
FROM checked
"""


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_float(value: float) -> str:
    return f"CAST({_sql_str(repr(float(value)))} AS DOUBLE)"


def _values(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A VALUES table; an all-NULL row keeps it non-empty (it never matches an equality)."""
    body = [", ".join(_sql_str(v) for v in row) for row in rows]
    body.append(", ".join("CAST(NULL AS VARCHAR)" for _ in columns))
    return f"(VALUES ({'), ('.join(body)})) AS t({', '.join(columns)})"


# -- validation ---------------------------------------------------------------------------------

_FILTERS = ("read", "fresh", "probe", "denied", "restore", "decrypt", "copy-out", "egress",
            "new-principal", "new-source", "new-action")
_GROUPS = ("role", "role-bucket", "session-bucket", "fleet-bucket")
_AGGREGATES = ("count", "bytes", "objects", "prefixes")


def check_baseline(baseline: FleetBaseline, rules: Sequence[FleetRule] = FLEET_RULES) -> None:
    """Refuse a baseline (thresholds file) that does not match ``rules``: other rules, a
    threshold for an unknown or unlearned rule, a learned rule without thresholds, a key of the
    wrong shape, or a threshold that is not a finite non-negative number."""
    if tuple(baseline.rules) != tuple(rules):
        got = sorted(r.name for r in baseline.rules)
        raise InvalidParameterError(
            f"the baseline's rules {got} do not match the detector's rules "
            f"{sorted(r.name for r in rules)} (or differ in definition)")
    by_name = {r.name: r for r in rules}
    for rule in rules:
        if (rule.filter not in _FILTERS or rule.group not in _GROUPS
                or rule.aggregate not in _AGGREGATES):
            raise InvalidParameterError(f"{rule.name}: not a rule the SQL can express")
        if rule.learned and rule.name not in baseline.thresholds:
            raise InvalidParameterError(f"the baseline has no thresholds for {rule.name}")
    for name, table in baseline.thresholds.items():
        known = by_name.get(name)
        if known is None or not known.learned:
            raise InvalidParameterError(f"thresholds for {name!r}, which learns none")
        rule = known
        if not isinstance(table, dict):
            raise InvalidParameterError(f"thresholds of {name} are not a table")
        for key, value in table.items():
            two = rule.group in ("role-bucket", "session-bucket")
            if not isinstance(key, str) or (key.count("\x00") == 1) != two:
                raise InvalidParameterError(f"{name}: threshold key {key!r} is not a "
                                            f"{'role and bucket' if two else rule.group}")
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise InvalidParameterError(f"{name}: threshold {value!r} for {key!r} is not "
                                            "a finite non-negative number")


# -- rendering ----------------------------------------------------------------------------------


def _render(sql: str, dialect: str) -> str:
    import sqlglot

    if dialect not in DIALECTS:
        raise InvalidParameterError(f"dialect must be one of {DIALECTS}")
    target = "athena" if dialect == "athena" else dialect
    out = sqlglot.transpile(sql, read="trino", write=target, pretty=True)
    if len(out) != 1:
        raise InvalidParameterError("one statement expected")
    return out[0]


def view_sql(dialect: str = "athena", *, table: str = TABLE, order: str = "eventid") -> str:
    """The normalising view over the CloudTrail table, in ``dialect``."""
    return _render(_VIEW.format(view=VIEW, table=table, order=order, kind=_KIND_CASE,
                                source_ok=_SOURCE_OK), dialect)


def athena_ddl(location: str, table: str = TABLE) -> str:
    """The CloudTrail table DDL AWS documents for Athena, for the trail's S3 ``location``."""
    if not location.startswith("s3://"):
        raise InvalidParameterError("the location must be an s3:// URI")
    return ATHENA_DDL.format(table=table, location=location.replace("'", ""))


def _filter_sql(rule: FleetRule, base: FleetBaseline) -> str:
    ok = "NOT e.denied"
    if rule.filter in ("read", "fresh"):
        # the pipeline's flow: a read naming no version, of an object written in the FRESH_S
        # before it, by a role that reads the bucket's fresh uploads by design
        flow = ("(NOT e.versioned AND EXISTS ("
                "SELECT 1 FROM ok_events w WHERE NOT w.denied AND w.kind = 'write' "
                "AND w.bucket = e.bucket AND w.obj_key = e.obj_key AND w.t_ms <= e.t_ms "
                f"AND w.t_ms > e.t_ms - {FRESH_S * 1000}) AND EXISTS ("
                "SELECT 1 FROM fresh_reader k WHERE k.principal = e.principal "
                "AND k.bucket = e.bucket))")
        neg = "" if rule.filter == "fresh" else "NOT "
        return f"{ok} AND e.kind IN ('get', 'copy', 'select') AND {neg}{flow}"
    if rule.filter == "probe":
        return f"{ok} AND e.kind IN ('head', 'list')"
    if rule.filter == "denied":
        return "e.denied"
    if rule.filter == "restore":
        return f"{ok} AND e.kind = 'restore'"
    if rule.filter == "decrypt":
        return f"{ok} AND e.kind = 'decrypt'"
    if rule.filter == "copy-out":
        return (f"{ok} AND e.kind = 'copy' AND (NOT EXISTS ("
                "SELECT 1 FROM known_dest k WHERE k.value = e.dest) OR (e.foreign_dest AND "
                "NOT EXISTS (SELECT 1 FROM known_foreign_dest k WHERE k.value = e.dest)))")
    if rule.filter == "egress":
        return (f"{ok} AND e.kind IN ('get', 'copy', 'select') AND (NOT EXISTS ("
                "SELECT 1 FROM known_network k WHERE k.principal = e.principal "
                "AND k.value = e.network) OR e.network LIKE 'vpce-foreign:%')")
    known_p = "EXISTS (SELECT 1 FROM known_principal k WHERE k.value = e.principal)"
    ok += " AND e.kind <> 'decrypt'"  # novelty is judged on S3 events
    if rule.filter == "new-principal":
        return f"{ok} AND NOT {known_p}"
    if rule.filter == "new-source":
        novel = " + ".join(
            f"CASE WHEN EXISTS (SELECT 1 FROM known_{t} k WHERE k.principal = e.principal "
            f"AND k.value = e.{col}) THEN 0 ELSE 1 END"
            for t, col in (("network", "network"), ("agent", "agent"), ("auth", "auth")))
        return f"{ok} AND {known_p} AND e.kind <> 'write' AND ({novel}) >= 2"
    if rule.filter == "new-action":
        return (f"{ok} AND {known_p} AND e.kind IN ('get', 'copy', 'select', 'restore') "
                "AND NOT EXISTS (SELECT 1 FROM known_action k WHERE "
                "k.principal = e.principal AND k.value = e.kind)")
    raise InvalidParameterError(f"unknown filter {rule.filter!r}")


def _tables(rule: FleetRule, base: FleetBaseline) -> list[str]:
    """The baseline's data the rule needs, as VALUES tables."""
    out: list[str] = []
    if rule.filter in ("read", "fresh"):
        rows = [[r, b] for b, roles in sorted(base.fresh_readers.items()) for r in roles]
        out.append(f"fresh_reader AS (SELECT * FROM {_values(['principal', 'bucket'], rows)})")
    if rule.filter == "copy-out":
        dests = [[d] for d in base.copy_destinations]
        out.append(f"known_dest AS (SELECT * FROM {_values(['value'], dests)})")
        foreign = [[d] for d in base.foreign_destinations]
        out.append(f"known_foreign_dest AS (SELECT * FROM {_values(['value'], foreign)})")
    if rule.filter in ("new-principal", "new-action", "new-source"):
        known_p = [[p] for p in base.principals]
        out.append(f"known_principal AS (SELECT * FROM {_values(['value'], known_p)})")
    pairs = {"network": base.networks, "agent": base.agents, "auth": base.auths,
             "action": base.actions}
    wanted = {"new-source": ("network", "agent", "auth"), "new-action": ("action",),
              "egress": ("network",)}
    for name in wanted.get(rule.filter, ()):
        rows = [[p, v] for p, vals in sorted(pairs[name].items()) for v in vals]
        out.append(f"known_{name} AS (SELECT * FROM {_values(['principal', 'value'], rows)})")
    if rule.group == "fleet-bucket" or rule.bulk_exempt:
        rows = [[r, b] for b, roles in sorted(base.bulk.items()) for r in roles]
        out.append(f"bulk AS (SELECT * FROM {_values(['principal', 'bucket'], rows)})")
    if rule.learned:
        lits: list[str] = []
        for key, value in sorted(base.thresholds.get(rule.name, {}).items()):
            p, b = (key.split("\x00", 1) if "\x00" in key else
                    ("", key) if rule.group == "fleet-bucket" else (key, ""))
            lits.append(f"({_sql_str(p)}, {_sql_str(b)}, {_sql_float(value)})")
        lits.append("(CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS DOUBLE))")
        out.append("thr AS (SELECT * FROM (VALUES " + ", ".join(lits)
                   + ") AS t(principal, bucket, value))")
    if rule.relative:
        known = base.prefix_counts if rule.aggregate == "prefixes" else base.sizes
        sized = [f"({_sql_str(b)}, {_sql_float(v)})" for b, v in sorted(known.items())]
        sized.append("(CAST(NULL AS VARCHAR), CAST(NULL AS DOUBLE))")
        out.append("known_size AS (SELECT * FROM (VALUES " + ", ".join(sized)
                   + ") AS t(bucket, value))")
    return out


SIZES_VIEW = "securepipe_s3_sizes"

_SIZES = """
CREATE OR REPLACE VIEW {sizes} AS
WITH obj_floor AS (SELECT * FROM {floors}),
sz_all AS (
    SELECT seq, t_ms, bucket, obj_key, kind, bytes,
        coalesce(regexp_extract(obj_key, '^[^/]*/([^/]*/)?'), '') AS prefix_key,
        CASE WHEN kind = 'write' THEN obj_key END AS written_key
    FROM {view} WHERE reject IS NULL AND NOT ignored AND NOT denied AND obj_key IS NOT NULL
),
sz_src AS (
    -- the dataset: objects read with a share of the typical object (others: one NULL marker)
    SELECT seq, t_ms, bucket, written_key,
        CASE WHEN counted THEN obj_key END AS obj_key,
        CASE WHEN counted THEN prefix_key END AS prefix
    FROM (SELECT a.*, a.kind IN ('get', 'select') AND CAST(a.bytes AS DOUBLE) >= coalesce(
              (SELECT max(f.value) FROM obj_floor f WHERE f.bucket = a.bucket), {default})
              AS counted
          FROM sz_all a) AS c
),
sz_ph AS (
    SELECT s.*, p.phase, CAST(floor(CAST(s.t_ms + p.phase AS DOUBLE) / {w}) AS BIGINT) AS wid
    FROM sz_src s CROSS JOIN (VALUES 0, {half}) AS p(phase)
),
sz_first AS (
    SELECT seq, t_ms, bucket, phase, wid,
        CASE WHEN written_key IS NOT NULL AND row_number() OVER (
                 PARTITION BY bucket, phase, wid, written_key ORDER BY t_ms, seq) = 1
             THEN 1 ELSE 0 END AS new_written,
        CASE WHEN row_number() OVER (PARTITION BY bucket, phase, wid, obj_key
                                     ORDER BY t_ms, seq) = 1 THEN 1 ELSE 0 END AS new_obj,
        CASE WHEN row_number() OVER (PARTITION BY bucket, phase, wid, prefix
                                     ORDER BY t_ms, seq) = 1 THEN 1 ELSE 0 END AS new_prefix
    FROM sz_ph
),
sz_run AS (
    SELECT seq,
        sum(new_obj) OVER (PARTITION BY bucket, phase, wid ORDER BY t_ms, seq
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n_obj,
        sum(new_prefix) OVER (PARTITION BY bucket, phase, wid ORDER BY t_ms, seq
                              ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n_prefix,
        sum(new_written) OVER (PARTITION BY bucket, phase, wid ORDER BY t_ms, seq
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n_written
    FROM sz_first
)
SELECT seq, max(n_obj) AS size_obj, max(n_prefix) AS size_prefix, max(n_written) AS size_written
FROM sz_run GROUP BY seq
"""


def sizes_sql(dialect: str = "athena", *, view: str = VIEW,
              baseline: FleetBaseline | None = None) -> str:
    """The second shared view: per event, the distinct objects and prefixes of its bucket
    successfully read (with at least ``SIZE_MIN_SHARE`` of the bucket's typical object, from
    ``baseline``) in the 24-hour windows (both phases) containing it, as the Python detector's
    bucket size; relative rules divide by it."""
    typical = baseline.object_bytes if baseline is not None else {}
    rows = [f"({_sql_str(b)}, {_sql_float(v * SIZE_MIN_SHARE)})"
            for b, v in sorted(typical.items())]
    rows.append("(CAST(NULL AS VARCHAR), CAST(NULL AS DOUBLE))")
    floors = "(VALUES " + ", ".join(rows) + ") AS t(bucket, value)"
    return _render(_SIZES.format(sizes=SIZES_VIEW, view=view, w=SIZE_WINDOW_S * 1000,
                                 half=SIZE_WINDOW_S * 500, floors=floors,
                                 default=_sql_float(DEFAULT_OBJECT_BYTES * SIZE_MIN_SHARE)),
                   dialect)


def rule_sql(rule: FleetRule, baseline: FleetBaseline, dialect: str = "athena", *,
             view: str = VIEW, sizes: str = SIZES_VIEW) -> str:
    """One rule as a query over the normalising view, thresholds filled in from ``baseline``.

    Rows: one per (group, window, phase) that crossed: the crossing event's time
    (``alert_ms``), the window's start, the value and threshold there; the phases are merged by
    :func:`merge_phases`."""
    index = [r.name for r in baseline.rules].index(rule.name)
    w = rule.window_ms
    half = w // 2
    grp_p = {"role": "e.principal", "role-bucket": "e.principal",
             "session-bucket": "e.principal", "fleet-bucket": "''"}[rule.group]
    grp_s = "e.session" if rule.group == "session-bucket" else "''"
    grp_b = "''" if rule.group == "role" else "e.bucket"
    where = _filter_sql(rule, baseline)
    if rule.group == "fleet-bucket" or rule.bulk_exempt:
        where += (" AND NOT EXISTS (SELECT 1 FROM bulk k WHERE k.principal = e.principal "
                  "AND k.bucket = e.bucket)")
    distinct = rule.aggregate in ("objects", "prefixes")
    if distinct:
        where += " AND e.obj_key IS NOT NULL"
    item = {"objects": "obj_key", "prefixes": "prefix"}.get(rule.aggregate)
    if rule.aggregate == "count":
        weight = "1"
    elif rule.aggregate == "bytes":
        weight = "bytes"
    else:
        weight = (f"CASE WHEN row_number() OVER (PARTITION BY gp, gs, gb, phase, wid, {item} "
                  "ORDER BY t_ms, seq) = 1 THEN 1 ELSE 0 END")
    ctes = [f"ok_events AS (SELECT * FROM {view} WHERE reject IS NULL AND NOT ignored)"]
    ctes += _tables(rule, baseline)
    thr_p = "''" if rule.group == "fleet-bucket" else "s.principal"
    thr_b = "''" if rule.group == "role" else "s.bucket"
    if rule.learned:
        base_thr = (f"coalesce((SELECT max(t.value) FROM thr t WHERE t.principal = {thr_p} "
                    f"AND t.bucket = {thr_b}), {_sql_float(rule.floor)})")
    else:
        base_thr = _sql_float(rule.floor)
    if rule.relative and rule.filter == "fresh":
        # the pipeline's flow is bounded by the uploads in the day, not the dataset
        share = "greatest(CAST(coalesce(z.size_written, 0) AS DOUBLE), 1E0)"
        threshold = f"greatest({_sql_float(rule.minimum)}, {base_thr} * {share})"
        size_join = f"LEFT JOIN {sizes} z ON z.seq = s.seq"
    elif rule.relative:
        size_col = "size_prefix" if rule.aggregate == "prefixes" else "size_obj"
        share = (f"greatest(coalesce((SELECT max(k.value) FROM known_size k "
                 f"WHERE k.bucket = s.bucket), 0E0), "
                 f"CAST(coalesce(z.{size_col}, 0) AS DOUBLE), 1E0)")
        threshold = f"greatest({_sql_float(rule.minimum)}, {base_thr} * {share})"
        size_join = f"LEFT JOIN {sizes} z ON z.seq = s.seq"
    else:
        threshold = f"greatest({_sql_float(rule.minimum)}, {base_thr})"
        size_join = ""
    principal = "'fleet'" if rule.group == "fleet-bucket" else "principal"
    scope = {"role": "'-'", "role-bucket": "bucket", "fleet-bucket": "bucket",
             "session-bucket": "bucket || ' session=' || session"}[rule.group]
    sql = f"""
WITH {', '.join(ctes)},
selected AS (
    SELECT e.seq, e.t_ms, e.principal, e.session, e.bucket, e.bytes, e.obj_key,
        coalesce(regexp_extract(e.obj_key, '^[^/]*/([^/]*/)?'), '') AS prefix,
        {grp_p} AS gp, {grp_s} AS gs, {grp_b} AS gb
    FROM ok_events e
    WHERE {where}
),
phased AS (
    SELECT s.*, p.phase, CAST(floor(CAST(s.t_ms + p.phase AS DOUBLE) / {w}) AS BIGINT) AS wid
    FROM selected s CROSS JOIN (VALUES 0, {half}) AS p(phase)
),
weighted AS (SELECT phased.*, {weight} AS weight FROM phased),
running AS (
    SELECT weighted.*,
        sum(CAST(weight AS DOUBLE)) OVER (PARTITION BY gp, gs, gb, phase, wid ORDER BY t_ms, seq
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS observed
    FROM weighted
),
judged AS (
    SELECT s.*, {threshold} AS threshold
    FROM running s {size_join}
),
crossed AS (
    SELECT judged.*,
        row_number() OVER (PARTITION BY gp, gs, gb, phase, wid ORDER BY t_ms, seq) AS nth
    FROM judged WHERE observed > threshold
)
SELECT {_sql_str(rule.name)} AS rule, {index} AS rule_index, {_sql_str(rule.family)} AS family,
    {_sql_str(rule.mitre)} AS mitre, {_sql_str(rule.group)} AS grp,
    {principal} AS principal, {scope} AS scope,
    gp, gs, gb, wid * {w} - phase AS window_start_ms, {w} AS window_ms, t_ms AS alert_ms,
    observed, threshold
FROM crossed WHERE nth = 1
ORDER BY alert_ms, window_start_ms
"""
    return _render(sql, dialect)


def reject_counts_sql(dialect: str = "athena", *, view: str = VIEW) -> str:
    """Records the view skips, counted by reason (the Python normaliser's wording), and the
    records that are not S3 data events the detector reads (``ignored``)."""
    return _render(f"SELECT coalesce(reject, 'ignored') AS reason, count(*) AS records "
                   f"FROM {view} WHERE reject IS NOT NULL OR ignored "
                   f"GROUP BY coalesce(reject, 'ignored') ORDER BY reason", dialect)


@dataclass(frozen=True)
class LakeQueries:
    """Everything to run on an engine: the view, one query per rule, the reject count."""

    dialect: str
    view: str
    sizes: str
    rules: dict[str, str]
    rejects: str

    def script(self) -> str:
        parts = [f"-- view: {VIEW}\n{self.view};", f"-- view: {SIZES_VIEW}\n{self.sizes};"]
        parts += [f"-- rule: {name}\n{sql};" for name, sql in self.rules.items()]
        parts.append(f"-- records skipped, by reason\n{self.rejects};")
        return "\n\n".join(parts)


def lake_queries(baseline: FleetBaseline, dialect: str = "athena", *,
                 rules: Sequence[FleetRule] = FLEET_RULES, table: str = TABLE,
                 order: str = "eventid") -> LakeQueries:
    """The view and every rule's query for ``dialect``, thresholds from ``baseline`` (checked
    against ``rules`` first: a baseline for other rules is refused)."""
    check_baseline(baseline, rules)
    return LakeQueries(dialect, view_sql(dialect, table=table, order=order),
                       sizes_sql(dialect, baseline=baseline),
                       {r.name: rule_sql(r, baseline, dialect) for r in baseline.rules},
                       reject_counts_sql(dialect))


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LakeAlert:
    """An alert from the SQL, keyed as :attr:`securepipe.audit.fleet.FleetAlert.key`."""

    rule: str
    principal: str
    scope: str
    window_start_ms: int
    alert_ms: int
    observed: float
    threshold: float

    @property
    def key(self) -> tuple[str, str, str, int, int]:
        return (self.rule, self.principal, self.scope, self.window_start_ms, self.alert_ms)


def merge_phases(rows: Iterable[dict[str, Any]]) -> list[LakeAlert]:
    """The two phases of one episode reported once, as the Python detector does: per rule and
    group, in order of alert time, a window is skipped if it starts before the end of the last
    window kept, and kept but not reported if an alert of that rule family and group was
    reported the same UTC day."""
    ordered = sorted(rows, key=lambda r: (int(r["alert_ms"]), int(r["rule_index"]),
                                          int(r["window_start_ms"])))
    last: dict[tuple[str, str, str, str], int] = {}
    last_day: dict[tuple[str, str, str, str, str], int] = {}
    out = []
    for row in ordered:
        group = (str(row["rule"]), str(row["gp"]), str(row["gs"]), str(row["gb"]))
        start = int(row["window_start_ms"])
        if group in last and start < last[group]:
            continue
        last[group] = start + int(row["window_ms"])
        day = int(row["alert_ms"]) // 86_400_000
        family = (str(row["family"] or row["rule"]), str(row["grp"]), *group[1:])
        if last_day.get(family) == day:
            continue  # one alert per rule family, group and UTC day, as the Python detector
        last_day[family] = day
        out.append(LakeAlert(str(row["rule"]), str(row["principal"]), str(row["scope"]), start,
                             int(row["alert_ms"]), float(row["observed"]),
                             float(row["threshold"])))
    return out


# -- DuckDB, locally --------------------------------------------------------------------------

_IDENTITY = ('{"type":"VARCHAR","principalId":"VARCHAR","arn":"VARCHAR","accountId":"VARCHAR",'
             '"invokedBy":"VARCHAR","sessionContext":{"sessionIssuer":{"type":"VARCHAR",'
             '"arn":"VARCHAR"}}}')
_RESOURCES = '[{"ARN":"VARCHAR","accountId":"VARCHAR","type":"VARCHAR"}]'
# one parse per record: the JSON-string columns stay JSON (as Athena's table keeps them strings)
_RECORD = ('{"eventTime":"VARCHAR","eventSource":"VARCHAR","eventName":"VARCHAR",'
           '"eventID":"VARCHAR","userIdentity":' + _IDENTITY + ',"sourceIPAddress":"VARCHAR",'
           '"userAgent":"VARCHAR","vpcEndpointId":"VARCHAR","vpcEndpointAccountId":"VARCHAR",'
           '"errorCode":"VARCHAR",'
           '"requestParameters":"JSON","additionalEventData":"JSON","resources":' + _RESOURCES
           + ',"recipientAccountId":"VARCHAR"}')


def duckdb_table(con: Any, paths: Sequence[str | Path], *, table: str = TABLE) -> int:
    """Load gzipped CloudTrail log files (``{"Records": [...]}``) into a DuckDB table with the
    Athena table's column shapes (``useridentity`` a struct, ``requestparameters`` and
    ``additionaleventdata`` JSON text, ``resources`` a list of structs) and a ``seq`` column:
    the record's order (file, then position). Each file is read as one JSON document, then its
    ``Records[*]`` (much faster in DuckDB than ``read_json`` of a ``JSON[]`` column).
    Returns the number of records."""
    files = [str(p) for p in paths]
    if not files:
        raise InvalidParameterError("no log files")
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"""
        CREATE TABLE {table} AS
        WITH f AS (
            SELECT list_position($files, filename) AS file_no,
                json_extract(json, '$.Records[*]') AS records
            FROM read_json_objects($files, filename = true, format = 'unstructured',
                                   compression = 'gzip', maximum_object_size = 268435456)
        ),
        r AS (SELECT file_no, unnest(records) AS rec, generate_subscripts(records, 1) AS pos
              FROM f),
        t AS (SELECT file_no, pos, json_transform(rec, '{_RECORD}') AS x FROM r)
        SELECT
            CAST(file_no AS BIGINT) * 100000000 + pos AS seq,
            x.eventTime AS eventtime,
            x.eventSource AS eventsource,
            x.eventName AS eventname,
            x.eventID AS eventid,
            x.userIdentity AS useridentity,
            x.sourceIPAddress AS sourceipaddress,
            x.userAgent AS useragent,
            x.vpcEndpointId AS vpcendpointid,
            x.vpcEndpointAccountId AS vpcendpointaccountid,
            x.errorCode AS errorcode,
            CAST(x.requestParameters AS VARCHAR) AS requestparameters,
            CAST(x.additionalEventData AS VARCHAR) AS additionaleventdata,
            x.resources AS resources,
            x.recipientAccountId AS recipientaccountid
        FROM t
    """, {"files": files})
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def run_duckdb(con: Any, baseline: FleetBaseline, *, rules: Sequence[FleetRule] = FLEET_RULES,
               table: str = TABLE) -> tuple[list[LakeAlert], dict[str, int]]:
    """Run the view and every rule on a DuckDB connection holding the CloudTrail ``table``
    (:func:`duckdb_table`); returns the merged alerts and the skipped records by reason. The
    views are materialised once (every rule reads them), as a CTAS would on Athena."""
    queries = lake_queries(baseline, "duckdb", rules=rules, table=table, order="seq")
    con.execute(queries.view)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {VIEW}_m AS SELECT * FROM {VIEW}")
    con.execute(sizes_sql("duckdb", view=f"{VIEW}_m", baseline=baseline))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SIZES_VIEW}_m AS SELECT * FROM {SIZES_VIEW}")
    rows: list[dict[str, Any]] = []
    for rule in baseline.rules:
        cur = con.execute(rule_sql(rule, baseline, "duckdb", view=f"{VIEW}_m",
                                   sizes=f"{SIZES_VIEW}_m"))
        names = [d[0] for d in cur.description]
        rows += [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    skipped = {str(r): int(n) for r, n in
               con.execute(reject_counts_sql("duckdb", view=f"{VIEW}_m")).fetchall()}
    return merge_phases(rows), skipped


__all__ = ["ATHENA_DDL", "DIALECTS", "SIZES_VIEW", "TABLE", "VIEW", "LakeAlert", "LakeQueries",
           "athena_ddl", "check_baseline", "duckdb_table", "lake_queries", "merge_phases",
           "reject_counts_sql",
           "rule_sql", "run_duckdb", "sizes_sql", "view_sql"]
