"""The ``securepipe`` command line: notebooks, voices, warmup, check, provision, ingest worker,
detect sql."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: As :data:`securepipe.checks.SEVERITIES` (not imported here: the other commands stay light).
SEVERITIES = ("low", "medium", "high", "critical")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="securepipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    nb = sub.add_parser("notebooks", help="execute every notebook into a folder, with HTML")
    nb.add_argument("--out", default="build", help="output folder (default: build)")
    nb.add_argument("--dir", default=None, help="notebook folder (default: notebooks/)")
    nb.add_argument("--no-html", action="store_true", help="skip the HTML copies")
    nb.add_argument("--jobs", type=int, default=None,
                    help="lessons run at once (default: one per core, at most 4; 1 times each "
                         "lesson alone, as the facilitator guide does)")

    sub.add_parser("warmup", help="compile librosa's numba kernels and cache lesson 04's tables")

    voices = sub.add_parser("voices", help="regenerate the synthetic voice set")
    voices.add_argument("args", nargs=argparse.REMAINDER, help="see `securepipe voices -h`")

    check = sub.add_parser(
        "check", help="posture scorecard on a sandbox or a real account (step 6)",
        description="Run every check of the kit's checklist and print the scorecard. Without "
        "--profile, a hardened sandbox is built (server mode, TLS) and checked through its "
        "endpoint URL, exactly as a real account is.")
    where = check.add_mutually_exclusive_group()
    where.add_argument("--sandbox", action="store_true",
                       help="check a fresh sandbox account (the default without --profile)")
    where.add_argument("--profile", help="AWS profile of a real account")
    check.add_argument("--region", help="region of the real account (default: the profile's)")
    check.add_argument("--scenario", choices=("hardened", "misconfigured"), default="hardened",
                       help="with --sandbox: which account to build (default: hardened)")
    check.add_argument("--bucket", action="append", default=[], metavar="ROLE=NAME",
                       help="a bucket for a role (raw, features, archive, audit); repeatable; "
                       "overrides discovery")
    check.add_argument("--data-key", metavar="ARN", help="the customer-managed data key")
    check.add_argument("--archive-key", metavar="ARN", help="the archive bucket's key")
    check.add_argument("--manifest", metavar="PATH",
                       help="manifest.json (or a JSON object sample_id -> speaker) attributing "
                       "objects without speaker metadata to their speakers, for the retention "
                       "check on a real account")
    check.add_argument("--severity", default="low", choices=SEVERITIES,
                       help="run only checks at or above this severity (default: low)")
    check.add_argument("--fail-on", default="high", choices=SEVERITIES,
                       help="exit 1 if a check at or above this severity fails (default: high)")
    check.add_argument("--errors-fail-on", default="critical", choices=(*SEVERITIES, "none"),
                       help="also exit 1 if a check at or above this severity (and --fail-on) "
                       "could not be evaluated (default: critical; 'none' to never)")
    check.add_argument("--json", metavar="PATH", help="write the scorecard as JSON")
    check.add_argument("--html", metavar="PATH", help="write a standalone HTML report")
    check.add_argument("--ocsf", metavar="PATH", help="write OCSF Detection Findings (class "
                       "2004, JSON array: what Security Hub / Security Lake ingest)")
    check.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    ingest = sub.add_parser("ingest", help="step 4 ingest")
    ingest_sub = ingest.add_subparsers(dest="ingest_command", required=True)
    worker = ingest_sub.add_parser(
        "worker", help="long-poll the ingest queue and ingest every upload it announces",
        description="Event-driven ingest: S3 ObjectCreated events through SQS. Stops on "
        "SIGTERM or SIGINT after finishing (or releasing) the samples in flight; prints a JSON "
        "summary.")
    worker.add_argument("--queue-url", required=True)
    worker.add_argument("--dead-letter-url", required=True)
    for name in ("raw-bucket", "features-bucket", "archive-bucket", "key-arn",
                 "archive-key-arn"):
        worker.add_argument(f"--{name}", required=True)
    worker.add_argument(
        "--anchor-bucket", required=True, metavar="BUCKET",
        help="the audit bucket where erasures anchor their signed journal heads (required: "
        "without it the consent gate readmits an erased speaker whose registry item was "
        "restored from a backup)")
    worker.add_argument("--consent-table", default=None, metavar="TABLE",
                        help="the consent registry table (default: securepipe-consent)")
    worker.add_argument("--profile", help="AWS profile (default: the environment's)")
    worker.add_argument("--config-file", help="AWS config file holding the profile")
    worker.add_argument("--ca-bundle", help="CA bundle to verify the endpoint with")
    worker.add_argument("--concurrency", type=int, default=8, help="samples in flight")
    worker.add_argument("--max-receives", type=int, default=3,
                        help="receives before a failing message is dead-lettered")
    worker.add_argument("--visibility-timeout", type=int, default=60, metavar="SECONDS")
    worker.add_argument("--wait", type=int, default=20, metavar="SECONDS",
                        help="long-poll wait (0-20)")
    worker.add_argument("--retry-delay", type=int, default=5, metavar="SECONDS")
    worker.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                        help="exit once the queue has been empty this long (backfills)")

    detect = sub.add_parser("detect", help="fleet detection")
    detect_sub = detect.add_subparsers(dest="detect_command", required=True)
    sql = detect_sub.add_parser(
        "sql", help="print the detector's rules as SQL for Athena (or DuckDB)",
        description="Print the CloudTrail table DDL (Athena), the normalising view and one "
        "query per fleet rule, thresholds filled in from a fitted baseline.")
    sql.add_argument("--dialect", choices=("athena", "trino", "duckdb"), default="athena")
    sql.add_argument("--baseline", metavar="PATH",
                     help="a fitted FleetBaseline as JSON (default: the scenario library's "
                     "baseline week, for a demonstration)")
    sql.add_argument("--location", default="s3://TRAIL-BUCKET/AWSLogs/ACCOUNT-ID/CloudTrail/",
                     help="the trail's S3 location for the table DDL")
    sql.add_argument("--table", default="cloudtrail_logs", help="the CloudTrail table's name")

    prov = sub.add_parser(
        "provision", help="create or complete the kit's resources in an account",
        description="Survey the account, print the plan (every change, every conflict), then "
        "apply it: keys and aliases, the four buckets (Object Lock on archive and audit), "
        "hardening, account Block Public Access, presign caps, lifecycle, the contractor role, "
        "the consent table and monitoring. Idempotent: a second run changes nothing. Conflicts "
        "change nothing unless --force.")
    prov.add_argument("--profile", help="AWS profile (default: the default credential chain)")
    prov.add_argument("--region", help="region (default: the profile's)")
    prov.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    prov.add_argument("--force", action="store_true",
                      help="apply what does not touch a conflicting resource")
    prov.add_argument("--cloudformation", metavar="PATH",
                      help="write the layout as a CloudFormation template instead (no change "
                      "to the account; the account id and region come from the session)")

    args = parser.parse_args(argv)
    if args.command == "provision":
        return _provision(args)
    if args.command == "detect":
        return _detect_sql(args)
    if args.command == "ingest":
        return _ingest_worker(args)
    if args.command == "check":
        return _check(parser, args)
    if args.command == "notebooks":
        from securepipe.lessons import notebooks

        if args.jobs is not None and args.jobs < 1:
            parser.error("--jobs must be at least 1")
        return notebooks.main(args.out, args.dir, html=not args.no_html, jobs=args.jobs)
    if args.command == "warmup":
        from securepipe.lessons import warmup

        return warmup.main()
    from securepipe.data import voices as voices_module

    return voices_module.main(args.args)


def _detect_sql(args: argparse.Namespace) -> int:
    """``securepipe detect sql``: DDL, view and rule queries on stdout; exit 2 on a baseline
    that does not match the rules."""
    from securepipe.audit.fleet import FleetBaseline
    from securepipe.audit.lake import athena_ddl, lake_queries
    from securepipe.errors import SecurePipeError

    try:
        if args.baseline:
            baseline = FleetBaseline.from_json(Path(args.baseline).read_text())
        else:
            from securepipe.audit.library import library_baseline

            baseline = library_baseline().baseline
        queries = lake_queries(baseline, args.dialect, table=args.table)
        ddl = athena_ddl(args.location, args.table) if args.dialect != "duckdb" else ""
    except (SecurePipeError, OSError, ValueError, TypeError, KeyError) as exc:
        print(f"securepipe detect sql: {exc}", file=sys.stderr)
        return 2
    if ddl:
        print(f"-- the CloudTrail table (Athena DDL, run once)\n{ddl}\n")
    print(queries.script())
    return 0


def _ingest_worker(args: argparse.Namespace) -> int:
    """``securepipe ingest worker``: run until SIGTERM (or idle), print the summary as JSON."""
    import json
    import logging

    import boto3

    from securepipe.features.ingest import IngestConfig, ProfileSessionFactory
    from securepipe.features.worker import WorkerSettings, ingest_worker

    logging.getLogger("aws_encryption_sdk").setLevel(logging.ERROR)
    config = IngestConfig(raw_bucket=args.raw_bucket, features_bucket=args.features_bucket,
                          archive_bucket=args.archive_bucket, key_arn=args.key_arn,
                          archive_key_arn=args.archive_key_arn,
                          anchor_bucket=args.anchor_bucket,
                          **({} if args.consent_table is None
                             else {"consent_table": args.consent_table}))
    settings = WorkerSettings(
        queue_url=args.queue_url, dead_letter_url=args.dead_letter_url,
        concurrency=args.concurrency, max_receives=args.max_receives,
        visibility_timeout_s=args.visibility_timeout, wait_s=args.wait,
        retry_delay_s=args.retry_delay, idle_exit_s=args.idle_exit)
    factory = (ProfileSessionFactory(args.profile, args.config_file, args.ca_bundle)
               if args.profile else boto3.Session)
    report = ingest_worker(config, settings, factory, handle_signals=True)
    print(json.dumps(report.summary(), sort_keys=True), flush=True)
    return 0


def _provision(args: argparse.Namespace) -> int:
    """``securepipe provision``: print the plan, apply it; 0 on success, 1 on conflicts."""
    import json

    import boto3

    from securepipe.errors import ProvisioningConflictError, SecurePipeError
    from securepipe.provision import AccountLayout, provision, render_cloudformation

    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        if args.cloudformation:
            template = render_cloudformation(AccountLayout.for_session(session))
            Path(args.cloudformation).write_text(json.dumps(template, indent=1) + "\n",
                                                 encoding="utf-8")
            print(f"wrote {args.cloudformation} ({len(template['Resources'])} resources)")
            return 0
        plan = provision(session, dry_run=True)
        print(plan.table())
        if args.dry_run or not plan.changes:
            return 1 if plan.conflicts else 0
        done = provision(session, force=args.force)
    except ProvisioningConflictError as exc:
        print(f"securepipe provision: refused, nothing changed: {exc}", file=sys.stderr)
        return 1
    except (SecurePipeError, OSError) as exc:
        print(f"securepipe provision: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"done: {len(done.changes)} change(s)" + (
        f", {len(done.skipped)} skipped for conflicts" if done.skipped else ""))
    return 1 if done.conflicts else 0


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``securepipe check``: run the scorecard, print it, write reports, return the exit code."""
    from securepipe.checks import BUCKET_ROLES, check_account, sample_speakers_from

    if args.profile and args.scenario != "hardened":
        parser.error("--scenario builds a sandbox account; it cannot be used with --profile")
    buckets: dict[str, str] = {}
    for item in args.bucket:
        role, sep, name = item.partition("=")
        if not sep or role not in BUCKET_ROLES or not name:
            parser.error(f"--bucket takes ROLE=NAME with ROLE one of {', '.join(BUCKET_ROLES)}")
        buckets[role] = name
    try:
        speakers = sample_speakers_from(args.manifest) if args.manifest else None
        card = check_account(profile=args.profile, region=args.region,
                             sandbox=True if args.sandbox else None, scenario=args.scenario,
                             buckets=buckets, data_key=args.data_key,
                             archive_key=args.archive_key, severity_filter=args.severity,
                             progress=not args.quiet, sample_speakers=speakers)
    except Exception as exc:  # a failure before any check could run: say why, exit 2
        print(f"securepipe check: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(card.table())
    if args.json:
        Path(args.json).write_text(card.to_json(), encoding="utf-8")
    if args.html:
        Path(args.html).write_text(card.to_html(), encoding="utf-8")
    if args.ocsf:
        Path(args.ocsf).write_text(card.to_ocsf(), encoding="utf-8")
    errors_fail_on = None if args.errors_fail_on == "none" else args.errors_fail_on
    code = card.exit_code(args.fail_on, errors_fail_on=errors_fail_on)
    if not args.quiet:
        print(f"exit code {code} (fail on {args.fail_on}, errors on {args.errors_fail_on})",
              file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
