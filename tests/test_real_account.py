"""The lesson flows end to end: opt-in against a real account (``-m aws --aws-profile P``, or
``make test-aws PROFILE=P``; skipped without it or without credentials), and always against the
sandbox's HTTPS endpoint through a profile, so the flow and its teardown are themselves tested."""

from __future__ import annotations

import logging

import boto3
import pytest
from aws_flows import flow_layout, leftovers, run_flows, teardown

from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)


def _check(session: boto3.Session) -> None:
    layout = flow_layout(session)
    try:
        result = run_flows(session, layout)
        assert result.processed == 2
        assert result.refused_other_prefix  # a contractor cannot list another's prefix
        failing = {k: v for k, v in result.statuses.items() if v in ("fail", "error")}
        # The roles this run made are new (created within the review window), not unused
        # grants; a real account's other roles that reach every bucket (an admin role nobody
        # used for 90 days) can still be flagged unused. The identity
        # running the flow (an operator's admin, which the kit does not manage) is reviewed too:
        # unguarded, it may read every prefix, decrypt without MFA and sign audit records.
        runner = {"iam_no_wildcard_admin_over_data", "iam_decrypt_identities_mfa",
                  "access_review_broad_grants", "audit_signing_key_separation"}
        assert set(failing) <= {"access_review_unused_grants", *runner}, failing
        assert "audit_trail_verifies" not in failing
    finally:
        left = teardown(session, layout)
    assert left == [] and leftovers(session, layout) == []


@pytest.mark.aws
def test_lesson_flows_on_a_real_account(request: pytest.FixtureRequest) -> None:
    profile = request.config.getoption("--aws-profile")
    if not profile:
        pytest.skip("no --aws-profile given (make test-aws PROFILE=...)")
    session = boto3.Session(profile_name=profile)
    try:
        session.client("sts").get_caller_identity()
    except Exception as exc:  # no credentials, expired SSO, no network: skip, say why
        pytest.skip(f"profile {profile!r} has no usable credentials: {exc}")
    _check(session)


def test_lesson_flows_against_the_sandbox_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(server=True, tls=True) as sb:
        monkeypatch.setenv("AWS_CONFIG_FILE", str(sb.config_file))
        monkeypatch.setenv("AWS_CA_BUNDLE", str(sb.ca_bundle))
        _check(boto3.Session(profile_name=Sandbox.PROFILE))
