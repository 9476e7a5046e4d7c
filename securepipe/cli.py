"""The ``securepipe`` command line: notebooks, voices, warmup, check, provision."""

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

    sub.add_parser("warmup", help="compile librosa's numba kernels into the project cache")

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
    check.add_argument("--severity", default="low", choices=SEVERITIES,
                       help="run only checks at or above this severity (default: low)")
    check.add_argument("--fail-on", default="high", choices=SEVERITIES,
                       help="exit 1 if a check at or above this severity fails (default: high)")
    check.add_argument("--errors-fail-on", default="critical", choices=(*SEVERITIES, "none"),
                       help="also exit 1 if a check at or above this severity (and --fail-on) "
                       "could not be evaluated (default: critical; 'none' to never)")
    check.add_argument("--json", metavar="PATH", help="write the scorecard as JSON")
    check.add_argument("--html", metavar="PATH", help="write a standalone HTML report")
    check.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

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
    if args.command == "check":
        return _check(parser, args)
    if args.command == "notebooks":
        from securepipe.lessons import notebooks

        return notebooks.main(args.out, args.dir, html=not args.no_html)
    if args.command == "warmup":
        from securepipe.lessons import warmup

        return warmup.main()
    from securepipe.data import voices as voices_module

    return voices_module.main(args.args)


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
    from securepipe.checks import BUCKET_ROLES, check_account

    if args.profile and args.scenario != "hardened":
        parser.error("--scenario builds a sandbox account; it cannot be used with --profile")
    buckets: dict[str, str] = {}
    for item in args.bucket:
        role, sep, name = item.partition("=")
        if not sep or role not in BUCKET_ROLES or not name:
            parser.error(f"--bucket takes ROLE=NAME with ROLE one of {', '.join(BUCKET_ROLES)}")
        buckets[role] = name
    try:
        card = check_account(profile=args.profile, region=args.region,
                             sandbox=True if args.sandbox else None, scenario=args.scenario,
                             buckets=buckets, data_key=args.data_key,
                             archive_key=args.archive_key, severity_filter=args.severity,
                             progress=not args.quiet)
    except Exception as exc:  # a failure before any check could run: say why, exit 2
        print(f"securepipe check: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(card.table())
    if args.json:
        Path(args.json).write_text(card.to_json(), encoding="utf-8")
    if args.html:
        Path(args.html).write_text(card.to_html(), encoding="utf-8")
    errors_fail_on = None if args.errors_fail_on == "none" else args.errors_fail_on
    code = card.exit_code(args.fail_on, errors_fail_on=errors_fail_on)
    if not args.quiet:
        print(f"exit code {code} (fail on {args.fail_on}, errors on {args.errors_fail_on})",
              file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
