"""Step 6: the posture scorecard. Every control of steps 1-5, checked on a sandbox or an account.

Each check is one :class:`Check` with Prowler-style metadata (id, title, severity, the kit's
step and the article's checklist item, why it matters, how to fix it, naming the kit function
that does) and returns, per resource, one of four statuses:

``pass``          the control is in place, with the evidence read from the account;
``fail``          it is not (the evidence says what is wrong);
``error``         it could not be evaluated: missing permission (AccessDenied), no such
                  bucket, throttling after retries, a step not installed... with the reason.
                  Never a pass;
``unverifiable``  the account cannot show it: the sandbox does not store it (request metrics),
                  or it is chosen by whoever signs a request (a presigned URL's lifetime
                  without a bucket-policy cap). AWS enforces it; the check does not pretend.

A check's status is the worst over its resources (fail > error > unverifiable > pass).
The checks reuse the kit's verifiers (:func:`securepipe.encryption.hardening.inspect_bucket`,
:func:`securepipe.audit.monitoring.inspect_monitoring`, :func:`securepipe.audit.chain.verify_trail`,
:func:`securepipe.retention.lifecycle.inspect_lifecycle` and
:func:`~securepipe.retention.lifecycle.sweep`,
:func:`securepipe.access.credentials.access_matrix`) rather than re-implementing them.

Run them with :func:`run_checks` (a session and a :class:`CheckConfig`, discovered from the
account by default) or :func:`check_account` (a profile, or a fresh sandbox); the CLI is
``securepipe check``. Reports: :meth:`Scorecard.table`, :meth:`Scorecard.to_json`,
:meth:`Scorecard.to_html`; :meth:`Scorecard.exit_code` for CI.

**Exit code.** Non-zero when a check at or above ``fail_on`` (default ``high``) *fails*, or
when a check at or above both ``fail_on`` and ``errors_fail_on`` (default ``critical``)
could not be evaluated: the run cannot vouch for the most important controls, so an error
there is treated as a failure; lesser errors are reported and left to the reader.
``unverifiable`` never changes the exit code.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.config import Config

from securepipe.checks._base import (
    BUCKET_ROLES,
    CHECKLIST,
    SEVERITIES,
    STATUSES,
    STEPS,
    Bucket,
    Check,
    CheckConfig,
    CheckContext,
    CheckResult,
    ResourceResult,
    Severity,
    Status,
    could_not_evaluate,
    severity_rank,
)
from securepipe.checks.review import AccessReview
from securepipe.clients import shared_client
from securepipe.errors import InvalidParameterError
from securepipe.report import format_table

__all__ = [
    "BUCKET_ROLES",
    "CHECKLIST",
    "REGISTRY",
    "SEVERITIES",
    "STATUSES",
    "STEPS",
    "Bucket",
    "Check",
    "CheckConfig",
    "CheckContext",
    "CheckResult",
    "ResourceResult",
    "Scorecard",
    "Severity",
    "Status",
    "check_account",
    "profile_session",
    "register",
    "registered",
    "run_checks",
    "sample_speakers_from",
]

#: Every registered check by id, in scorecard order (by step, then as registered).
REGISTRY: dict[str, Check] = {}


def register(check: Check) -> Check:
    """Add a check to :data:`REGISTRY` (ids are unique); returns it."""
    if not isinstance(check, Check):
        raise InvalidParameterError("register() takes a Check")
    if check.id in REGISTRY:
        raise InvalidParameterError(f"a check with id {check.id!r} is already registered")
    REGISTRY[check.id] = check
    ordered = sorted(REGISTRY.values(), key=lambda c: c.step)  # stable: keeps registration order
    REGISTRY.clear()
    REGISTRY.update((c.id, c) for c in ordered)
    return check


def _load() -> None:
    from securepipe.checks import (
        audit,
        discovery,
        guards,
        identity,
        kms,
        retention,
        review,
        storage,
    )

    for module in (storage, discovery, kms, identity, guards, audit, retention, review):
        for check in module.CHECKS:
            register(check)


_load()


def registered(
    *, severity_filter: Severity = "low", ids: Iterable[str] | None = None
) -> list[Check]:
    """The checks at or above ``severity_filter`` (optionally only ``ids``), in order."""
    floor = severity_rank(severity_filter)
    wanted = None if ids is None else set(ids)
    if wanted is not None and (unknown := wanted - set(REGISTRY)):
        raise InvalidParameterError(f"unknown check id(s): {sorted(unknown)}")
    return [
        c
        for c in REGISTRY.values()
        if severity_rank(c.severity) >= floor and (wanted is None or c.id in wanted)
    ]


@dataclass(frozen=True)
class Scorecard:
    """The outcome of one run: every check's result, the access review, and the run's facts."""

    results: tuple[CheckResult, ...]
    account_id: str | None
    region: str | None
    endpoint: str | None
    started: dt.datetime
    seconds: float
    config: CheckConfig = field(repr=False)
    access_review: AccessReview | None = field(default=None, repr=False)

    def result(self, check_id: str) -> CheckResult:
        for r in self.results:
            if r.check.id == check_id:
                return r
        raise KeyError(check_id)

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}

    def with_status(self, *statuses: Status) -> list[CheckResult]:
        return [r for r in self.results if r.status in statuses]

    def exit_code(
        self, fail_on: Severity = "high", *, errors_fail_on: Severity | None = "critical"
    ) -> int:
        """1 if a check at or above ``fail_on`` failed, or errored at or above both
        ``fail_on`` and ``errors_fail_on`` (``None``: errors never count); else 0."""
        floor = severity_rank(fail_on)
        error_floor = None if errors_fail_on is None else max(floor, severity_rank(errors_fail_on))
        for r in self.results:
            rank = severity_rank(r.check.severity)
            if r.status == "fail" and rank >= floor:
                return 1
            if r.status == "error" and error_floor is not None and rank >= error_floor:
                return 1
        return 0

    def rows(self, *, width: int | None = 90) -> list[dict[str, Any]]:
        """One row per check for :func:`securepipe.report.format_table`."""
        out = []
        for r in self.results:
            evidence = r.evidence
            if width is not None and len(evidence) > width:
                evidence = evidence[: width - 3] + "..."
            out.append(
                {
                    "status": r.status.upper(),
                    "severity": r.check.severity,
                    "step": r.check.step,
                    "check": r.check.id,
                    "evidence": evidence,
                }
            )
        return out

    def table(self, *, width: int | None = 90) -> str:
        """The scorecard as a text table, with a one-line summary under it."""
        counts = ", ".join(f"{n} {s}" for s, n in self.counts().items() if n)
        where = self.endpoint or f"AWS {self.region}"
        return (
            format_table(self.rows(width=width)) + f"\n\n{len(self.results)} checks: "
            f"{counts} (account {self.account_id}, {where}, {self.seconds:.1f} s)"
            + self.explanations()
        )

    def explanations(self) -> str:
        """What the table cannot show in one row: discovery notes, and the full reason of every
        check that could not be evaluated (a TLS or permission failure must be read here, not
        only in the JSON)."""
        lines: list[str] = []
        if self.config.notes:
            lines += ["", "discovery notes:", *(f"  - {n}" for n in self.config.notes)]
        errors = [(r.check.id, x) for r in self.results for x in r.resources if x.status == "error"]
        if errors:
            lines += ["", "could not evaluate:"]
            lines += [
                f"  - {cid} [{self.config.label(x.resource)}]: {x.evidence}" for cid, x in errors
            ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "region": self.region,
            "endpoint": self.endpoint,
            "started": self.started.isoformat(),
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "exit_code": {sev: self.exit_code(sev) for sev in SEVERITIES},
            "config": {
                "buckets": [
                    {"name": b.name, "role": b.role, "key_arn": b.key_arn}
                    for b in self.config.buckets
                ],
                "key_arns": list(self.config.key_arns),
                "audit_prefix": self.config.audit_prefix,
                "max_session_s": self.config.max_session_s,
                "max_presign_s": self.config.max_presign_s,
                "ingest_window_s": self.config.ingest_window.total_seconds(),
                "unused_after_days": self.config.unused_after.days,
                "consent_table": self.config.consent_table,
                "notes": list(self.config.notes),
            },
            "checks": [r.to_dict() for r in self.results],
            "access_review": self.access_review.to_dict() if self.access_review else None,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The whole scorecard as JSON (every resource's evidence included)."""
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def to_ocsf(self, *, indent: int | None = 2) -> str:
        """Every resource result as an OCSF Detection Finding (class 2004), a JSON array
        (:mod:`securepipe.checks.ocsf`): what Prowler emits and Security Lake ingests."""
        from securepipe.checks.ocsf import to_ocsf_json

        return to_ocsf_json(self, indent=indent)

    def to_html(self, *, title: str = "securepipe scorecard") -> str:
        """A standalone HTML report (inline CSS, no external assets, every value escaped)."""
        from securepipe.checks.html import render

        return render(self, title=title)


def _retrying(session: boto3.Session, attempts: int) -> Any:
    """Give every client made from ``session`` standard retries; returns what to restore."""
    botocore_session = session._session
    previous = botocore_session.get_default_client_config()
    retry = Config(
        retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=10, read_timeout=60
    )
    botocore_session.set_default_client_config(previous.merge(retry) if previous else retry)
    return previous


def run_checks(
    session: boto3.Session,
    *,
    config: CheckConfig | None = None,
    severity_filter: Severity = "low",
    checks: Iterable[str] | None = None,
    progress: bool = False,
    stream: TextIO | None = None,
) -> Scorecard:
    """Run the registered checks against the account behind ``session``.

    ``config`` defaults to :meth:`CheckConfig.discover`. While the run lasts, clients made from
    ``session`` retry throttling and transient errors (botocore standard mode,
    ``config.max_attempts`` attempts, https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html);
    a check that still cannot read what it needs reports ``error`` with the reason, and the run
    goes on. ``progress`` writes one line per check to ``stream`` (default stderr).
    """
    if not isinstance(session, boto3.Session):
        raise InvalidParameterError("run_checks needs a boto3.Session")
    chosen = registered(severity_filter=severity_filter, ids=checks)
    out = stream or sys.stderr
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    previous = _retrying(session, config.max_attempts if config else 5)
    try:
        if config is None:
            config = CheckConfig.discover(session)
            _retrying(session, config.max_attempts)
        account = caller = None
        try:
            identity = shared_client(session, "sts").get_caller_identity()
            account, caller = str(identity["Account"]), str(identity["Arn"])
        except Exception as exc:  # the checks that need it will say so
            config = _note(config, f"caller identity unknown ({could_not_evaluate(exc)})")
        ctx = CheckContext(session, config, account_id=account, caller_arn=caller)
        results = []
        for i, check in enumerate(chosen, 1):
            result = check.run(ctx)
            results.append(result)
            if progress:
                print(
                    f"[{i:2}/{len(chosen)}] {result.status.upper():12} {check.id} "
                    f"({result.seconds:.2f} s)",
                    file=out,
                    flush=True,
                )
        endpoint = shared_client(session, "s3").meta.endpoint_url
    finally:
        session._session.set_default_client_config(previous)
    return Scorecard(
        results=tuple(results),
        account_id=account,
        region=session.region_name,
        endpoint=None if endpoint.endswith(".amazonaws.com") else endpoint,
        started=started,
        seconds=time.perf_counter() - t0,
        config=config,
        access_review=ctx.cached("access_review"),
    )


def _note(config: CheckConfig, note: str) -> CheckConfig:
    return replace(config, notes=(*config.notes, note))


def profile_session(
    profile: str | None = None,
    *,
    region: str | None = None,
    config_file: str | None = None,
    ca_bundle: str | None = None,
) -> boto3.Session:
    """A boto3 Session from an AWS profile (and, for the sandbox, its own config file).

    This is how the CLI reaches both a real account (``--profile``) and the sandbox's server
    (its generated profile, with ``endpoint_url`` and ``ca_bundle``), through the same code
    (https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html).
    """
    import os

    import botocore.session

    bs = botocore.session.Session()
    if config_file:
        bs.set_config_variable("config_file", str(config_file))
        bs.set_config_variable("credentials_file", os.devnull)
    if profile:
        bs.set_config_variable("profile", profile)
    if ca_bundle:
        bs.set_config_variable("ca_bundle", str(ca_bundle))
    return boto3.Session(botocore_session=bs, region_name=region)


def sample_speakers_from(path: str | Path) -> dict[str, str]:
    """``sample_id -> speaker`` from a manifest, for attributing objects on a real account.

    ``path`` is the kit's ``manifest.json`` (or its folder, as
    :func:`securepipe.data.dataset.load_manifest` reads it) or a plain JSON object mapping
    sample ids to speaker ids. The retention check prefers each
    object's own speaker metadata and falls back to this mapping
    (:func:`securepipe.retention.sweeper.attributed_versions`).
    """
    from securepipe.data.dataset import load_manifest
    from securepipe.retention.sweeper import sample_speakers

    where = Path(path)
    if where.is_dir():
        return sample_speakers(load_manifest(where))
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameterError(f"cannot read manifest {where}: {exc}") from None
    if isinstance(data, dict) and "utterances" in data:
        return sample_speakers(load_manifest(where.parent))
    if isinstance(data, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return dict(data)
    raise InvalidParameterError(
        f"{where} is neither the kit's manifest.json nor a JSON object "
        "mapping sample ids to speaker ids"
    )


def check_account(
    *,
    profile: str | None = None,
    region: str | None = None,
    sandbox: bool | None = None,
    scenario: str = "hardened",
    config: CheckConfig | None = None,
    buckets: Mapping[str, str] | None = None,
    data_key: str | None = None,
    archive_key: str | None = None,
    severity_filter: Severity = "low",
    checks: Sequence[str] | None = None,
    progress: bool = False,
    stream: TextIO | None = None,
    sample_speakers: Mapping[str, str] | None = None,
) -> Scorecard:
    """Run the scorecard on a real account (``profile``) or on a fresh sandbox.

    ``sample_speakers`` (``<contractor>/<sample_id> -> speaker``, e.g.
    :func:`sample_speakers_from` a manifest) attributes objects that carry no speaker
    metadata, on a real account exactly as on the sandbox.

    With ``sandbox`` (the default when no profile is given) a sandbox is started in server
    mode with TLS, built as ``scenario`` (``hardened`` or ``misconfigured``, see
    :mod:`securepipe.checks.scenarios`), and checked through its AWS config profile and HTTPS
    endpoint, exactly as a real account is. ``buckets`` (role -> name), ``data_key`` and
    ``archive_key`` replace what discovery finds (:meth:`CheckConfig.with_resources`); a
    ``config`` replaces discovery altogether.
    """
    use_sandbox = sandbox if sandbox is not None else profile is None

    def configure(found: CheckConfig) -> CheckConfig:
        if sample_speakers is not None:
            found = replace(found, sample_speakers=dict(sample_speakers))
        if buckets or data_key or archive_key:
            return found.with_resources(buckets, data_key=data_key, archive_key=archive_key)
        return found

    if not use_sandbox:
        session = profile_session(profile, region=region)
        cfg = config or configure(CheckConfig.discover(session))
        return run_checks(
            session,
            config=cfg,
            severity_filter=severity_filter,
            checks=checks,
            progress=progress,
            stream=stream,
        )
    from securepipe.checks import scenarios
    from securepipe.sandbox.account import Sandbox

    builders: dict[str, Callable[..., scenarios.Scenario]] = {
        "hardened": scenarios.hardened_account,
        "misconfigured": scenarios.misconfigured_account,
    }
    if scenario not in builders:
        raise InvalidParameterError(f"scenario must be one of {sorted(builders)}")
    out = stream or sys.stderr
    with Sandbox(server=True, tls=True) as sb:
        if progress:
            print(
                f"building a {scenario} sandbox account at {sb.endpoint_url} ...",
                file=out,
                flush=True,
            )
        built = builders[scenario](sb)
        session = profile_session(
            Sandbox.PROFILE, config_file=str(sb.config_file), ca_bundle=str(sb.ca_bundle)
        )
        cfg = config or configure(built.check_config(session))
        return run_checks(
            session,
            config=cfg,
            severity_filter=severity_filter,
            checks=checks,
            progress=progress,
            stream=stream,
        )
