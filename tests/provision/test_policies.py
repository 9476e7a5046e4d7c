"""Least privilege for the kit's own roles: each generated policy is enough to run its kit
functions, through an STS role session whose only permissions are that policy, and a call
outside it is refused (the sandbox evaluates identity policies for role sessions)."""

from __future__ import annotations

import json
import logging

import boto3
import pytest
from botocore.exceptions import ClientError

from securepipe import clock
from securepipe.access.credentials import session_with_credentials
from securepipe.data.dataset import load_manifest
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.upload import CONSENT_NOT_CHECKED, upload_sample
from securepipe.errors import InvalidParameterError
from securepipe.features.ingest import (
    IngestConfig,
    IngestItem,
    ingest_batch,
    ingest_sample,
    items_from_manifest,
)
from securepipe.policy import Policy
from securepipe.provision import KIT_ROLES, AccountLayout, kit_role_policy, provision
from securepipe.retention.consent import ConsentRegistry
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)


def _as_role(sb: Sandbox, role: str, policy: dict) -> boto3.Session:
    iam = sb.session.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:aws:iam::{sb.account_id}:root"}}]}
    arn = iam.create_role(RoleName=f"securepipe-{role}",
                          AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=f"securepipe-{role}", PolicyName="kit",
                        PolicyDocument=json.dumps(policy))
    creds = sb.session.client("sts").assume_role(RoleArn=arn, RoleSessionName=role)[
        "Credentials"]
    return session_with_credentials(sb.session, creds["AccessKeyId"],
                                    creds["SecretAccessKey"], creds["SessionToken"])


def _refused(call) -> bool:  # type: ignore[no-untyped-def]
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
    return False


def test_every_role_policy_parses_and_names_only_the_layout(sandbox: Sandbox) -> None:
    layout = provision(sandbox.session).layout
    for role in KIT_ROLES:
        doc = kit_role_policy(role, layout)
        Policy.from_document(role, doc)  # the kit's evaluator reads it
        text = json.dumps(doc)
        assert '"Action": "*"' not in text and "s3:*" not in text and "kms:*" not in text
    with pytest.raises(InvalidParameterError):
        kit_role_policy("admin", layout)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        kit_role_policy("trainer", AccountLayout("111122223333", "eu-west-1"))  # no keys yet


def test_uploader_ingest_and_trainer_run_with_exactly_their_policy(sandbox: Sandbox) -> None:
    layout = provision(sandbox.session).layout
    manifest = load_manifest()
    uploads = manifest.utterances[:2]
    uploader = _as_role(sandbox, "uploader", kit_role_policy("uploader", layout))
    envelope = Envelope(uploader, EnvelopeConfig(key_arns=layout.kms_key_arn))
    for u in uploads:
        upload_sample(uploader, envelope, manifest.path_of(u), bucket=layout.bucket("raw"),
                      key_arn=layout.kms_key_arn,
                      context=SampleContext(u.contractor, u.sample_id, "speech-model-training"),
                      consent=CONSENT_NOT_CHECKED)
    s3 = uploader.client("s3")
    assert _refused(lambda: s3.get_object(Bucket=layout.bucket("raw"),
                                          Key=f"raw/{uploads[0].contractor}/"
                                              f"{uploads[0].sample_id}"))
    assert _refused(lambda: s3.list_objects_v2(Bucket=layout.bucket("features")))

    # Consent gates every sample (a deliberate change since this test was written): the
    # speakers' consent is recorded by an administrator, then read by the ingest role.
    ConsentRegistry(sandbox.session, layout.consent_table, create=False).load_manifest_consents(
        manifest, rebase_to=clock.now().date())
    worker = _as_role(sandbox, "ingest", kit_role_policy("ingest", layout))
    config = IngestConfig(raw_bucket=layout.bucket("raw"),
                          features_bucket=layout.bucket("features"),
                          archive_bucket=layout.bucket("archive"), key_arn=layout.kms_key_arn,
                          archive_key_arn=layout.archive_key_arn)  # type: ignore[arg-type]
    report = ingest_batch(items_from_manifest(manifest)[:2], config, lambda: worker)
    assert report.count("processed") == 2, report.outcomes
    assert _refused(lambda: worker.client("s3").get_object(
        Bucket=layout.bucket("audit"), Key="trails/anything"))

    trainer = _as_role(sandbox, "trainer", kit_role_policy("trainer", layout))
    listed = trainer.client("s3").list_objects_v2(Bucket=layout.bucket("features"),
                                                 Prefix="features/")["Contents"]
    assert len(listed) == 2
    body = trainer.client("s3").get_object(Bucket=layout.bucket("features"),
                                           Key=listed[0]["Key"])["Body"].read()
    assert body and _refused(lambda: trainer.client("s3").list_object_versions(
        Bucket=layout.bucket("raw")))
    assert _refused(lambda: trainer.client("s3").put_object(
        Bucket=layout.bucket("features"), Key="features/forged", Body=b"x"))

    # The ingest role's consent fence: consent withdrawn after the gate, before the features
    # write; with exactly its policy, ingest deletes the features version it wrote and refuses.
    third = manifest.utterances[2]
    upload_sample(uploader, envelope, manifest.path_of(third), bucket=layout.bucket("raw"),
                  key_arn=layout.kms_key_arn, consent=CONSENT_NOT_CHECKED, speaker=third.speaker,
                  context=SampleContext(third.contractor, third.sample_id,
                                        "speech-model-training"))
    registry = ConsentRegistry(sandbox.session, layout.consent_table, create=False)

    def withdraw_between_gate_and_write(step: str, item: IngestItem) -> None:
        if step == "extract":
            registry.withdraw(third.speaker, clock.now())

    outcome = ingest_sample(worker, config, IngestItem(third.contractor, third.sample_id,
                                                       speaker=third.speaker),
                            after_step=withdraw_between_gate_and_write)
    assert outcome.status == "refused" and "the version written was deleted" in str(
        outcome.reason), outcome
    left = sandbox.session.client("s3").list_object_versions(
        Bucket=layout.bucket("features"), Prefix=f"features/{third.contractor}/{third.sample_id}")
    assert not left.get("Versions") and not left.get("DeleteMarkers")
