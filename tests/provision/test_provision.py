"""Provisioning from one layout, two ways: through the API (idempotent, a dry-run plan,
conflicts refused before any write) and as a CloudFormation template (cfn-lint clean; deployed
to the sandbox's CloudFormation, then completed by provision). Either way the scorecard passes
and AccountLayout.discover reads the layout back."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from securepipe.checks import CheckConfig, run_checks
from securepipe.errors import InvalidParameterError, ProvisioningConflictError
from securepipe.provision import KIT_ROLES, AccountLayout, provision, render_cloudformation
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.gaps import gap

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)

#: On the sandbox, the request-metric alarms cannot be verified (moto does not store request
#: metrics, gap s3-request-metrics). The freshly provisioned roles have never been used: the
#: access review reports them as new, not as unused grants (they were created within its
#: window), so that check passes.
EXPECTED_NOT_PASS = {"s3_bulk_read_alarms": "unverifiable"}


def _guard_the_runner(session, layout: AccountLayout,  # type: ignore[no-untyped-def]
                      config: CheckConfig | None = None) -> None:
    """The scorecard reviews the identity running it (never exempt): the sandbox's admin
    holds '*', which provisioning does not touch (it is the operator, not the layout). As in
    the hardened scenario, its data and signing-key access then needs MFA."""
    from securepipe.access.guards import apply_admin_guard
    from securepipe.sandbox.account import ADMIN_USER

    keys = [layout.data_key_arn, layout.archive_key_arn, layout.signing_key_arn]
    buckets = list(layout.buckets.values())
    if config is not None:  # also the sandbox's own keys and buckets the scorecard finds
        keys += [config.signing_key_arn, *config.key_arns]
        buckets += [b.name for b in config.buckets]
    apply_admin_guard(session, ADMIN_USER, key_arns=list(dict.fromkeys(k for k in keys if k)),
                      buckets=list(dict.fromkeys(buckets)),
                      mfa_codes=("123456", "654321"))  # the sandbox accepts any two codes


def _statuses(session) -> dict[str, str]:
    card = run_checks(session, config=CheckConfig.discover(session))
    return {r.check.id: r.status for r in card.results if r.status != "pass"}


def test_provision_then_the_scorecard_passes_and_a_rerun_changes_nothing(
        sandbox: Sandbox) -> None:
    session = sandbox.session
    plan = provision(session, dry_run=True)
    assert plan.changes and not plan.conflicts and not plan.applied
    assert _statuses(session)["s3_bucket_tls_only_policy"] == "fail"  # dry run changed nothing
    done = provision(session)
    assert done.applied and {c.step for c in done.changes} >= {
        "bucket-hardening", "account-public-access", "presign-cap", "lifecycle",
        "contractor-role", "kit-roles", "consent-table", "monitoring"}
    assert sum(c.step == "kit-roles" for c in plan.changes) == 5  # the dry run listed them
    _guard_the_runner(session, done.layout)
    assert _statuses(session) == EXPECTED_NOT_PASS
    again = provision(session, dry_run=True)
    assert again.empty, again.table()
    assert provision(session).changes == ()
    found = AccountLayout.discover(session)
    assert found == done.layout
    assert found.bucket("raw") == sandbox.resources.bucket("raw")
    assert found.kms_key_arn == sandbox.resources.kms_key_arn  # the sandbox's own alias
    assert found.signing_key_arn == sandbox.resources.signing_key_arn


def test_conflicts_are_reported_and_nothing_changes(sandbox: Sandbox) -> None:
    session = sandbox.session
    kms, ddb = session.client("kms"), session.client("dynamodb")
    sign_only = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    kms.update_alias(AliasName="alias/securepipe-archive", TargetKeyId=sign_only["KeyId"])
    ddb.create_table(TableName="securepipe-consent", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    plan = provision(session, dry_run=True)
    assert len(plan.conflicts) == 2, plan.conflicts
    assert any("alias/securepipe-archive" in c for c in plan.conflicts)
    assert any("securepipe-consent" in c for c in plan.conflicts)
    before = _statuses(session)
    with pytest.raises(ProvisioningConflictError) as exc:
        provision(session)
    assert len(exc.value.conflicts) == 2
    assert _statuses(session) == before  # nothing changed
    forced = provision(session, force=True)
    assert "securepipe-consent" in forced.skipped
    assert ddb.describe_table(TableName="securepipe-consent")["Table"]["KeySchema"][0][
        "AttributeName"] == "id"  # the conflicting table was left alone


def test_kit_role_trust_is_a_parameter_and_a_narrowed_trust_is_kept(sandbox: Sandbox) -> None:
    session = sandbox.session
    iam = session.client("iam")
    operator = iam.create_role(RoleName="pipeline-operator", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}))["Role"]["Arn"]
    provision(session, trusted_principals={"ingest": [operator]})

    def principals(role: str) -> list[object]:
        doc = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        return [st["Principal"]["AWS"] for st in doc["Statement"]]

    assert principals("securepipe-ingest") == [operator]
    assert principals("securepipe-trainer") == [f"arn:aws:iam::{sandbox.account_id}:root"]
    # a trust you narrowed yourself (a statement of your own beside the kit's) survives a re-run
    doc = iam.get_role(RoleName="securepipe-trainer")["Role"]["AssumeRolePolicyDocument"]
    doc["Statement"].append({"Sid": "AlsoTheScheduler", "Effect": "Allow",
                             "Principal": {"AWS": operator}, "Action": "sts:AssumeRole"})
    iam.update_assume_role_policy(RoleName="securepipe-trainer", PolicyDocument=json.dumps(doc))
    assert provision(session, dry_run=True).empty
    assert provision(session).changes == ()
    assert len(principals("securepipe-trainer")) == 2
    # naming a role's principals replaces only the kit's statement, and the plan says so
    plan = provision(session, dry_run=True, trusted_principals={"trainer": [operator]})
    assert [c.step for c in plan.changes] == ["kit-roles"]
    provision(session, trusted_principals={"trainer": [operator]})
    assert principals("securepipe-trainer") == [operator, operator]
    # a missing tag is planned and put back
    iam.untag_role(RoleName="securepipe-eraser", TagKeys=["securepipe"])
    plan = provision(session, dry_run=True)
    assert [(c.resource, c.action) for c in plan.changes] == [
        ("securepipe-eraser", "tag securepipe=audit-writer")]
    provision(session)
    assert provision(session, dry_run=True).empty
    for bad in ({"admin": [operator]}, {"ingest": "arn:aws:iam::123456789012:root"},
                {"ingest": ["not an arn"]}, ["ingest"]):
        with pytest.raises(InvalidParameterError):
            provision(session, trusted_principals=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        AccountLayout.for_session(session, kit_roles={"ingest": "securepipe-contractor"})


def test_invalid_layouts_are_refused_before_any_call() -> None:
    good = {"account_id": "111122223333", "region": "eu-west-1"}
    for bad in ({"account_id": "1234"}, {"region": "moon"},
                {"buckets": {"raw": "Not_A_Bucket"}}, {"buckets": {"logs": "x-y-z"}},
                {"buckets": {"raw": "same-name", "audit": "same-name"}},
                {"data_key_alias": "alias/aws/s3"}, {"contractor_role": "a b"},
                {"consent_table": "x"}, {"signing_key_alias": "alias/securepipe-data"}):
        with pytest.raises(InvalidParameterError):
            AccountLayout(**{**good, **bad})
    with pytest.raises(InvalidParameterError):
        provision("not a session")  # type: ignore[arg-type]


def test_cloudformation_template_lints_clean(tmp_path: Path) -> None:
    template = render_cloudformation(AccountLayout("111122223333", "eu-west-1"))
    path = tmp_path / "securepipe.json"
    path.write_text(json.dumps(template))
    lint = shutil.which("cfn-lint") or str(Path(__import__("sys").executable).parent / "cfn-lint")
    out = subprocess.run([lint, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_cloudformation_stack_then_provision_completes_it(sandbox: Sandbox) -> None:
    session = sandbox.session
    layout = AccountLayout.for_session(session, buckets={
        r: f"securepipe-cfn-{r}-{sandbox.account_id}" for r in
        ("raw", "features", "archive", "audit")}, data_key_alias="alias/cfn-data",
        archive_key_alias="alias/cfn-archive", signing_key_alias="alias/cfn-signing")
    cfn = session.client("cloudformation")
    cfn.create_stack(StackName="securepipe", TemplateBody=json.dumps(
        render_cloudformation(layout)), Capabilities=["CAPABILITY_NAMED_IAM"])
    s3 = session.client("s3")
    raw = layout.bucket("raw")
    # What moto's CloudFormation applied, and what it ignored (the gap register says so).
    assert s3.get_bucket_encryption(Bucket=raw)["ServerSideEncryptionConfiguration"]
    ignored = gap("cloudformation-s3-bucket")
    assert "VersioningConfiguration" in ignored.moto_behaviour
    assert s3.get_bucket_versioning(Bucket=raw).get("Status") != "Enabled"
    assert "KeyUsage" in ignored.moto_behaviour  # the signing key comes out symmetric
    plan = provision(session, layout, dry_run=True)
    steps = {c.step for c in plan.changes}
    assert {"buckets", "object-lock", "bucket-hardening", "presign-cap", "lifecycle",
            "monitoring"} <= steps
    assert len(plan.conflicts) == 1 and plan.conflicts[0].startswith("alias/cfn-signing")
    with pytest.raises(ProvisioningConflictError):
        provision(session, layout)
    done = provision(session, layout, force=True)
    assert done.skipped == ("alias/cfn-signing",)
    again = provision(session, layout, dry_run=True)
    assert not again.changes and len(again.conflicts) == 1
    found = AccountLayout.discover(session, buckets=dict(layout.buckets),
                                   data_key_alias="alias/cfn-data",
                                   archive_key_alias="alias/cfn-archive",
                                   signing_key_alias="alias/cfn-signing")
    assert found.data_key_arn and found.archive_key_arn and found.signing_key_arn
    assert s3.get_object_lock_configuration(Bucket=layout.bucket("audit"))[
        "ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    config = dataclasses.replace(CheckConfig.discover(session).with_resources(
        dict(layout.buckets), data_key=found.data_key_arn, archive_key=found.archive_key_arn),
        signing_key_arn=found.signing_key_arn)
    _guard_the_runner(session, found, config)
    card = run_checks(session, config=config)
    problems = {r.check.id: r.status for r in card.results if r.status != "pass"}
    # The signing alias is in conflict (moto's CloudFormation made it symmetric), so
    # provisioning refused to sign a trail with it; the scorecard, pinned to that alias, says
    # the "signing" key is no SIGN_VERIFY key and cannot verify a history with it.
    assert problems == {**EXPECTED_NOT_PASS, "audit_trail_verifies": "error",
                        "audit_signing_key_separation": "fail"}, card.table()
    assert "not an ECDSA_SHA_256 signing key" in card.result("audit_trail_verifies").evidence
    # The stack made the kit's roles, with their generated policies and tags (the review
    # recognises each as the kit's own, with exactly its policy).
    from securepipe.checks.review import access_review

    review = access_review(session, config)
    assert {f"role/{layout.role_name(r)}" for r in KIT_ROLES} <= set(review.exempt), review.notes
    assert not any(c.step == "kit-roles" for c in again.changes)
    assert s3.list_objects_v2(Bucket=layout.bucket("audit"), Prefix="trails/")[
        "KeyCount"] == 0
