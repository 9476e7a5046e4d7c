"""The lesson flows end to end against an account reached through a boto3 session, in a prefix
of their own, with teardown: used by the opt-in real-account run (``-m aws --aws-profile P``,
``make test-aws PROFILE=P``) and, against the sandbox's HTTPS endpoint, by the normal suite.

What a real run needs and costs is in the README ("Testing against a real account")."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from securepipe.access.credentials import (
    contractor_session,
    ensure_contractor_role,
    vend_contractor_credentials,
)
from securepipe.checks import CheckConfig, run_checks
from securepipe.checks.scenarios import rebased_manifest
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.upload import CONSENT_NOT_CHECKED, upload_sample
from securepipe.features.ingest import IngestConfig, ingest_batch, items_from_manifest
from securepipe.provision import KIT_ROLES, AccountLayout, provision
from securepipe.retention.consent import ConsentRegistry
from securepipe.retention.sweeper import sample_speakers


def flow_layout(session: boto3.Session, run_id: str | None = None) -> AccountLayout:
    """A layout whose every name carries ``sp-test-<run>``, so a run touches nothing else."""
    run = run_id or secrets.token_hex(3)
    account = str(session.client("sts").get_caller_identity()["Account"])
    region = session.region_name or "us-east-1"
    p = f"sp-test-{run}"
    return AccountLayout(
        account_id=account, region=region,
        buckets={r: f"{p}-{r}-{account}-{region}" for r in ("raw", "features", "archive",
                                                              "audit")},
        data_key_alias=f"alias/{p}-data", archive_key_alias=f"alias/{p}-archive",
        signing_key_alias=f"alias/{p}-signing", contractor_role=f"{p}-contractor",
        kit_roles={r: f"{p}-{r}" for r in KIT_ROLES},
        consent_table=f"{p}-consent", trail_name=f"{p}-trail", topic_name=f"{p}-alerts",
        queue_name=f"{p}-alerts")


@dataclass
class FlowResult:
    layout: AccountLayout
    processed: int
    refused_other_prefix: bool
    statuses: dict[str, str]


def run_flows(session: boto3.Session, layout: AccountLayout) -> FlowResult:
    """Provision, upload as two contractors, ingest, check; the caller tears down."""
    layout = provision(session, layout).layout
    raw, key = layout.bucket("raw"), layout.kms_key_arn
    role_arn = ensure_contractor_role(session, bucket=raw, key_arn=key,
                                      role_name=layout.contractor_role, max_session_s=3600)
    manifest = rebased_manifest()  # consent dates moved so every speaker is inside retention
    ConsentRegistry(session, layout.consent_table,
                    kms_key_arn=key).load_manifest_consents(manifest)
    uploads = [u for u in manifest.utterances if u.contractor in ("c01", "c02")][:2]
    refused = False
    for u in uploads:
        creds = vend_contractor_credentials(session, role_arn=role_arn, contractor=u.contractor,
                                            bucket=raw, key_arn=key)
        cs = contractor_session(session, creds)
        upload_sample(cs, Envelope(cs, EnvelopeConfig(key_arns=key)), manifest.path_of(u),
                      bucket=raw, key_arn=key,
                      context=SampleContext(u.contractor, u.sample_id, "speech-model-training"),
                      consent=CONSENT_NOT_CHECKED)
        other = "c02" if u.contractor == "c01" else "c01"
        try:
            cs.client("s3").list_objects_v2(Bucket=raw, Prefix=f"raw/{other}/")
        except ClientError:
            refused = True
    config = IngestConfig(raw_bucket=raw, features_bucket=layout.bucket("features"),
                          archive_bucket=layout.bucket("archive"), key_arn=key,
                          archive_key_arn=layout.archive_key_arn or key,
                          consent_table=layout.consent_table)
    wanted = {u.sample_id for u in uploads}
    items = [i for i in items_from_manifest(manifest) if i.sample_id in wanted]
    report = ingest_batch(items, config, lambda: session)
    check_config = dataclasses.replace(CheckConfig.discover(session).with_resources(
        dict(layout.buckets), data_key=key, archive_key=layout.archive_key_arn),
        consent_table=layout.consent_table, sample_speakers=sample_speakers(manifest),
        signing_key_arn=layout.signing_key_arn)
    card = run_checks(session, config=check_config)
    return FlowResult(layout, report.count("processed"), refused,
                      {r.check.id: r.status for r in card.results})


def teardown(session: boto3.Session, layout: AccountLayout) -> list[str]:
    """Delete everything the layout names; returns what could not be deleted (with why).

    Objects under a GOVERNANCE lock are deleted with BypassGovernanceRetention (the caller
    needs s3:BypassGovernanceRetention); KMS keys are scheduled for deletion after 7 days, the
    shortest window AWS allows. Account-wide Block Public Access is left as it is.
    """
    left: list[str] = []

    def attempt(what: str, call: Any) -> None:
        try:
            call()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("NoSuchBucket", "NoSuchEntity", "NotFoundException",
                            "ResourceNotFoundException", "TrailNotFoundException",
                            "AWS.SimpleQueueService.NonExistentQueue", "NotFound"):
                left.append(f"{what}: {code}")

    s3 = session.client("s3")
    for bucket in layout.buckets.values():
        def empty(bucket: str = bucket) -> None:
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"],
                                     BypassGovernanceRetention=True)
        attempt(f"empty {bucket}", empty)
        attempt(f"delete {bucket}", lambda bucket=bucket: s3.delete_bucket(Bucket=bucket))
    ct = session.client("cloudtrail")
    attempt("trail", lambda: ct.delete_trail(Name=layout.trail_name))
    cw = session.client("cloudwatch")
    attempt("alarms", lambda: cw.delete_alarms(AlarmNames=[
        f"securepipe-{m}-{b}" for m in ("GetRequests", "BytesDownloaded")
        for b in layout.data_buckets]))
    sns, sqs = session.client("sns"), session.client("sqs")
    topic = f"arn:aws:sns:{layout.region}:{layout.account_id}:{layout.topic_name}"
    attempt("topic", lambda: sns.delete_topic(TopicArn=topic))
    attempt("queue", lambda: sqs.delete_queue(
        QueueUrl=sqs.get_queue_url(QueueName=layout.queue_name)["QueueUrl"]))
    ddb = session.client("dynamodb")
    attempt("table", lambda: ddb.delete_table(TableName=layout.consent_table))
    iam = session.client("iam")

    for role_name in (layout.contractor_role, *layout.kit_roles.values()):
        def role(role_name: str = role_name) -> None:
            for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=role_name, PolicyName=name)
            iam.delete_role(RoleName=role_name)
        attempt(role_name, role)
    kms = session.client("kms")
    # Only aliases that exist: describing a missing one is a refusal in the sandbox (its
    # emulation fails closed on a key it cannot resolve) and NotFound on AWS.
    existing = {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
    for alias in (layout.data_key_alias, layout.archive_key_alias, layout.signing_key_alias):
        if alias not in existing:
            continue

        def key(alias: str = alias) -> None:
            key_id = kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
            kms.delete_alias(AliasName=alias)
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        attempt(alias, key)
    return left


def leftovers(session: boto3.Session, layout: AccountLayout) -> list[str]:
    """What still exists of the layout after :func:`teardown` (keys pending deletion aside)."""
    out = []
    names = {b["Name"] for b in session.client("s3").list_buckets().get("Buckets", [])}
    out += sorted(set(layout.buckets.values()) & names)
    aliases = {a["AliasName"] for a in session.client("kms").list_aliases()["Aliases"]}
    out += sorted({layout.data_key_alias, layout.archive_key_alias,
                   layout.signing_key_alias} & aliases)
    for role_name in (layout.contractor_role, *layout.kit_roles.values()):
        try:
            session.client("iam").get_role(RoleName=role_name)
            out.append(role_name)
        except ClientError:
            pass
    tables = session.client("dynamodb").list_tables().get("TableNames", [])
    out += [t for t in tables if t == layout.consent_table]
    return out
