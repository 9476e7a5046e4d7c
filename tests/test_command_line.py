"""``securepipe ingest worker``'s options reach the ingest configuration."""

from __future__ import annotations

from typing import Any

import pytest

from securepipe import cli
from securepipe.features import worker

ARGS = ["ingest", "worker", "--queue-url", "https://sqs/q", "--dead-letter-url", "https://sqs/d",
        "--raw-bucket", "securepipe-raw-1-eu", "--features-bucket", "securepipe-features-1-eu",
        "--archive-bucket", "securepipe-archive-1-eu",
        "--key-arn", "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "--archive-key-arn",
        "arn:aws:kms:eu-west-1:111122223333:key/5678abcd-12ab-34cd-56ef-1234567890ab"]


def test_the_worker_gates_consent_with_the_anchor_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the anchors, a registry item restored from a backup readmits an erased speaker:
    the worker refuses to start without ``--anchor-bucket`` and passes it on."""
    seen: list[Any] = []

    class Report:
        def summary(self) -> dict[str, int]:
            return {}

    def fake_worker(config: Any, settings: Any, factory: Any, **kwargs: Any) -> Report:
        seen.append(config)
        return Report()
    monkeypatch.setattr(worker, "ingest_worker", fake_worker)
    with pytest.raises(SystemExit) as refused:
        cli.main(ARGS)
    assert refused.value.code == 2 and not seen
    assert cli.main([*ARGS, "--anchor-bucket", "securepipe-audit-1-eu",
                     "--consent-table", "consent-x"]) == 0
    assert seen[0].anchor_bucket == "securepipe-audit-1-eu"
    assert seen[0].consent_table == "consent-x"
