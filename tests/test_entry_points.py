"""Wrong argument types at public entry points are a typed InvalidParameterError, raised before
any AWS call, never a raw TypeError or AttributeError from deep inside boto3."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from securepipe.access.credentials import ensure_contractor_role
from securepipe.access.presigned import apply_presign_age_cap
from securepipe.audit.monitoring import apply_monitoring
from securepipe.encryption.hardening import (
    apply_account_public_access_block,
    apply_bucket_hardening,
)
from securepipe.errors import InvalidParameterError
from securepipe.features.ingest import IngestConfig, IngestItem, ingest_batch
from securepipe.ids import check_session, check_session_factory
from securepipe.retention.lifecycle import apply_lifecycle, lifecycle_rules
from securepipe.sandbox.account import Sandbox

KEY = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000001"


def _calls(session: Any) -> dict[str, Callable[[], object]]:
    return {
        "apply_bucket_hardening": lambda: apply_bucket_hardening(session, "securepipe-raw", KEY),
        "apply_account_public_access_block": lambda: apply_account_public_access_block(session),
        "apply_presign_age_cap": lambda: apply_presign_age_cap(session, "securepipe-raw"),
        "apply_monitoring": lambda: apply_monitoring(session, ["securepipe-raw"],
                                                     "securepipe-audit"),
        "apply_lifecycle": lambda: apply_lifecycle(session, "securepipe-raw",
                                                   lifecycle_rules("raw")),
        "ensure_contractor_role": lambda: ensure_contractor_role(
            session, bucket="securepipe-raw", key_arn=KEY),
    }


@pytest.mark.parametrize("name", list(_calls(None)))
@pytest.mark.parametrize("wrong", [lambda: None, "my-profile", None, object()],
                         ids=["factory", "profile-name", "none", "object"])
def test_apply_functions_want_a_session(name: str, wrong: Any) -> None:
    with pytest.raises(InvalidParameterError, match=r"must be a boto3\.Session"):
        _calls(wrong)[name]()


def test_ingest_wants_a_session_factory_not_a_session(sandbox: Sandbox) -> None:
    res = sandbox.resources
    config = IngestConfig(raw_bucket=res.bucket("raw"), features_bucket=res.bucket("features"),
                          archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                          archive_key_arn=res.archive_key_arn)
    items = [IngestItem("c01", "spk01_u1")]
    with pytest.raises(InvalidParameterError, match="not a Session itself"):
        ingest_batch(items, config, sandbox.session)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="archive_session_factory"):
        ingest_batch(items, config, lambda: sandbox.session,
                     archive_session_factory=sandbox.session)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="IngestConfig"):
        ingest_batch(items, {"raw_bucket": "x"}, lambda: sandbox.session)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="IngestItem"):
        ingest_batch(["raw/c01/spk01_u1"], config, lambda: sandbox.session)  # type: ignore[list-item]
    assert ingest_batch([], config, lambda: sandbox.session).outcomes == ()


def test_the_checks_name_what_was_passed(sandbox: Sandbox) -> None:
    assert check_session(sandbox.session) is sandbox.session
    with pytest.raises(InvalidParameterError, match="session factory"):
        check_session(lambda: sandbox.session)
    with pytest.raises(InvalidParameterError, match="profile name"):
        check_session("default")
    with pytest.raises(InvalidParameterError, match="callable"):
        check_session_factory(42)
