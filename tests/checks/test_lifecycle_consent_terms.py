"""``s3_lifecycle_expires_data`` judges lifecycle rules against the consent terms the consent
registry holds (issue 14, item 5), found by discovery, and falls back to BIPA's cap only when
there is no registry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from securepipe.checks import CheckConfig, run_checks
from securepipe.data.dataset import load_manifest
from securepipe.retention.consent import ConsentRegistry
from securepipe.retention.lifecycle import apply_lifecycle, lifecycle_rules
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
CHECK = "s3_lifecycle_expires_data"


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


def _features_result(sb: Sandbox) -> tuple[str, str, CheckConfig]:
    config = CheckConfig.discover(sb.session, voice_discovery=False)
    card = run_checks(sb.session, config=config, checks=[CHECK])
    [res] = [r for r in card.result(CHECK).resources
             if r.resource == sb.resources.bucket("features")]
    return res.status, res.evidence, config


def test_a_rule_longer_than_the_registrys_longest_term_fails_with_the_number(
        sb: Sandbox) -> None:
    manifest = load_manifest()
    short = SimpleNamespace(speakers=[s for s in manifest.speakers if s.consent.term_days <= 730])
    # not the default table name: discovery finds it by its name and its key (speaker)
    registry = ConsentRegistry(sb.session, "voice-consent-prod")
    registry.load_manifest_consents(short)
    assert registry.longest_term_days() == 730
    features = sb.resources.bucket("features")

    apply_lifecycle(sb.session, features, lifecycle_rules("features", max_term_days=1000))
    status, evidence, config = _features_result(sb)
    assert config.consent_table == "voice-consent-prod"
    assert status == "fail" and "1000" in evidence and "730" in evidence, evidence

    apply_lifecycle(sb.session, features, lifecycle_rules("features", max_term_days=730),
                    replace=True)
    status, evidence, _ = _features_result(sb)
    assert status == "pass" and "730" in evidence, evidence

    # the same 1000-day rule is within BIPA's cap: only the registry's terms make it fail
    apply_lifecycle(sb.session, features, lifecycle_rules("features", max_term_days=1000),
                    replace=True)
    sb.session.client("dynamodb").delete_table(TableName="voice-consent-prod")
    status, evidence, config = _features_result(sb)
    assert status == "pass" and "no consent registry" in evidence, evidence
    assert any("no consent registry table found" in n for n in config.notes)


def test_raw_uploads_are_judged_against_the_configured_ingest_window(sb: Sandbox) -> None:
    import dataclasses
    import datetime as dt

    raw = sb.resources.bucket("raw")
    apply_lifecycle(sb.session, raw, lifecycle_rules("raw"))   # raw/ expires after 7 days
    config = CheckConfig.discover(sb.session, voice_discovery=False)

    def raw_status(window_days: int) -> tuple[str, str]:
        card = run_checks(sb.session, checks=[CHECK], config=dataclasses.replace(
            config, ingest_window=dt.timedelta(days=window_days)))
        [res] = [r for r in card.result(CHECK).resources if r.resource == raw]
        return res.status, res.evidence

    assert raw_status(7)[0] == "pass"
    status, evidence = raw_status(3)
    assert status == "fail" and "raw/" in evidence, evidence
