"""Least privilege for the kit's own roles: each generated policy is enough to run its kit
functions, through an STS role session whose only permissions are that policy, and a call
outside it is refused (the sandbox evaluates identity policies for role sessions)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from securepipe import clock
from securepipe.access.credentials import session_with_credentials
from securepipe.data.dataset import load_manifest
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.upload import CONSENT_NOT_CHECKED, upload_sample
from securepipe.errors import ErasureInProgressError, InvalidParameterError
from securepipe.features.ingest import (
    IngestConfig,
    IngestItem,
    ingest_batch,
    ingest_sample,
    items_from_manifest,
)
from securepipe.policy import Policy, Request, evaluate
from securepipe.provision import (
    KIT_ROLES,
    AccountLayout,
    KitRole,
    kit_role_policy,
    kit_role_tags,
    provision,
)
from securepipe.provision.policies import KIT_ROLE_POLICY_NAME
from securepipe.retention.consent import ConsentRegistry
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)


def _as_role(sb: Sandbox, layout: AccountLayout, role: KitRole) -> boto3.Session:
    """A session of the kit role ``provision`` created, after checking that the role holds
    exactly its generated policy (one inline policy, nothing attached) and its tags."""
    iam = sb.session.client("iam")
    name = layout.role_name(role)
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [KIT_ROLE_POLICY_NAME]
    assert iam.get_role_policy(RoleName=name, PolicyName=KIT_ROLE_POLICY_NAME)[
        "PolicyDocument"] == kit_role_policy(role, layout)
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    tags = iam.list_role_tags(RoleName=name)["Tags"]
    assert sorted(map(str, tags)) == sorted(map(str, kit_role_tags(role)))
    arn = iam.get_role(RoleName=name)["Role"]["Arn"]
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
    uploader = _as_role(sandbox, layout, "uploader")
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
    worker = _as_role(sandbox, layout, "ingest")
    config = _ingest_config(layout)
    report = ingest_batch(items_from_manifest(manifest)[:2], config, lambda: worker)
    assert report.count("processed") == 2, report.outcomes
    assert _refused(lambda: worker.client("s3").get_object(
        Bucket=layout.bucket("audit"), Key="trails/anything"))

    trainer = _as_role(sandbox, layout, "trainer")
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

def _guard_the_admin(sandbox: Sandbox, layout: AccountLayout) -> None:
    """As in the hardened scenario: the sandbox admin's '*' needs MFA for the data and the
    signing key (the scorecard reviews every principal; the sandbox accepts any two codes)."""
    from securepipe.access.guards import apply_admin_guard
    from securepipe.sandbox.account import ADMIN_USER

    apply_admin_guard(sandbox.session, ADMIN_USER,
                      key_arns=[k for k in (layout.data_key_arn, layout.archive_key_arn,
                                            layout.signing_key_arn) if k],
                      buckets=list(layout.buckets.values()), mfa_codes=("123456", "654321"))


def test_auditor_runs_the_scorecard_with_exactly_its_policy(sandbox: Sandbox) -> None:
    """``securepipe check`` (every check: configuration reads, the access review, the trail
    history verified with the public key) as the auditor role sees what the admin sees."""
    from securepipe.checks import CheckConfig, run_checks
    from securepipe.checks.review import access_review

    layout = provision(sandbox.session).layout
    _guard_the_admin(sandbox, layout)
    admin = run_checks(sandbox.session, config=CheckConfig.discover(sandbox.session))
    auditor = _as_role(sandbox, layout, "auditor")
    config = CheckConfig.discover(auditor)
    card = run_checks(auditor, config=config)
    statuses = {r.check.id: r.status for r in card.results}
    assert "error" not in statuses.values(), card.table()
    assert statuses == {r.check.id: r.status for r in admin.results}, card.table()
    assert statuses["audit_trail_verifies"] == "pass"  # the provisioning trail, verified
    review = access_review(auditor, config)
    assert f"role/{layout.role_name('auditor')}" in review.matrix.principals
    # read-only: it may not sign (forge a trail), write a trail, or decrypt a feature
    kms, s3 = auditor.client("kms"), auditor.client("s3")
    assert _refused(lambda: kms.sign(KeyId=layout.signing_key_arn, Message=b"forged",
                                     SigningAlgorithm="ECDSA_SHA_256"))
    assert _refused(lambda: s3.put_object(Bucket=layout.bucket("audit"),
                                          Key="trails/forged.jsonl", Body=b"{}"))
    assert _refused(lambda: kms.generate_data_key(KeyId=layout.kms_key_arn,
                                                  KeySpec="AES_256"))


def test_eraser_erases_a_speaker_and_ships_the_trail_with_exactly_its_policy(
        sandbox: Sandbox) -> None:
    """erase_speaker (every version, the journal, shredding, the signed receipt), then the
    sweeper, then the erasure trail shipped into the audit history, all as the eraser role."""
    from securepipe.audit.ledger import TrailLedger
    from securepipe.audit.records import AuditRecord
    from securepipe.encryption.signing import KmsSigner, PublicKeyVerifier
    from securepipe.retention.erasure import erase_speaker, verify_receipt
    from securepipe.retention.sweeper import sweep

    layout = provision(sandbox.session).layout
    manifest = load_manifest()
    admin_registry = ConsentRegistry(sandbox.session, layout.consent_table, create=False)
    admin_registry.load_manifest_consents(manifest, rebase_to=clock.now().date())
    config = _ingest_config(layout)
    items = items_from_manifest(manifest)
    speaker = items[0].speaker
    assert speaker is not None
    mine = [i for i in items if i.speaker == speaker][:2]
    envelope = Envelope(sandbox.session, EnvelopeConfig(key_arns=layout.kms_key_arn))
    for u in manifest.utterances:
        if any((u.contractor, u.sample_id) == (i.contractor, i.sample_id) for i in mine):
            upload_sample(sandbox.session, envelope, manifest.path_of(u),
                          bucket=layout.bucket("raw"), key_arn=layout.kms_key_arn,
                          context=SampleContext(u.contractor, u.sample_id,
                                                "speech-model-training"),
                          consent=admin_registry, speaker=speaker)
    report = ingest_batch(mine, config, lambda: sandbox.session)
    assert report.count("processed") == len(mine), report.outcomes
    s3_admin = sandbox.session.client("s3")

    def versions() -> int:
        return sum(len(s3_admin.list_object_versions(Bucket=b).get("Versions", []))
                   for b in layout.data_buckets)

    assert versions() > 0

    eraser = _as_role(sandbox, layout, "eraser")
    registry = ConsentRegistry(eraser, layout.consent_table, create=False)
    signer = KmsSigner(eraser, layout.signing_key_arn)  # type: ignore[arg-type]
    # the erasure lease (take, refuse a second run, release) works under exactly the policy
    other_run = "ab" * 16
    registry.take_erasure_lease(speaker, other_run, now=clock.now(),
                                until=clock.now() + dt.timedelta(hours=1))
    with pytest.raises(ErasureInProgressError):
        erase_speaker(eraser, speaker=speaker, registry=registry,
                      buckets=list(layout.data_buckets), signer=signer,
                      anchor_bucket=layout.bucket("audit"))
    assert versions() > 0 and registry.release_erasure_lease(speaker, other_run)
    receipt = erase_speaker(eraser, speaker=speaker, registry=registry,
                            buckets=list(layout.data_buckets), signer=signer,
                            anchor_bucket=layout.bucket("audit"))
    assert receipt.deleted and not receipt.unattributed
    assert registry.erasure_lease(speaker) is None      # renewed and released as the eraser
    assert versions() == 0  # every version of the only speaker ingested is gone
    anchors = s3_admin.list_object_versions(Bucket=layout.bucket("audit"),
                                            Prefix=f"erasure-journal/{speaker}/")
    assert anchors.get("Versions")  # the eraser anchored its signed journal heads
    verify_receipt(json.loads(json.dumps(receipt.as_dict())),
                   PublicKeyVerifier.from_kms(sandbox.session, layout.signing_key_arn))
    swept = sweep(eraser, buckets=list(layout.data_buckets), registry=registry, dry_run=False)
    assert not swept.unattributed

    ledger = TrailLedger.resume(eraser, layout.bucket("audit"), layout.signing_key_arn,
                                trail_prefix="trails/", mode="GOVERNANCE",
                                sse_kms_key_arn=layout.kms_key_arn)
    trail = ledger.open(f"erasure-{speaker}")
    trail.append(AuditRecord(principal="eraser", action="securepipe:erase", key=speaker,
                             purpose=receipt.status))
    ledger.ship(trail)
    ledger.seal()
    from securepipe.checks import CheckConfig, run_checks

    _guard_the_admin(sandbox, layout)
    card = run_checks(sandbox.session, config=CheckConfig.discover(sandbox.session),
                      checks=["audit_trail_verifies", "audit_signing_key_separation"])
    assert {r.status for r in card.results} == {"pass"}, card.table()

    # nothing beyond erasure: it cannot read a feature's plaintext key, write raw data, or
    # sign with any other key
    s3, kms = eraser.client("s3"), eraser.client("kms")
    assert _refused(lambda: s3.put_object(Bucket=layout.bucket("raw"), Key="raw/c01/x",
                                          Body=b"x"))
    assert _refused(lambda: kms.generate_data_key(KeyId=layout.archive_key_arn,
                                                  KeySpec="AES_256"))
    assert _refused(lambda: s3.put_object_retention(
        Bucket=layout.bucket("audit"), Key=f"trails/{clock.now():%Y-%m-%d}/x",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": clock.now()},
        BypassGovernanceRetention=True))


def _emulation_refused(call) -> bool:  # type: ignore[no-untyped-def]
    """Refused with AccessDenied by the sandbox's emulation of AWS's IAM enforcement (the
    message carries the emulation's label), not by anything else."""
    from securepipe.sandbox.emulation import EMULATION

    try:
        call()
    except ClientError as exc:
        return (exc.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
                and EMULATION in exc.response["Error"].get("Message", ""))
    return False


def _ingest_config(layout: AccountLayout) -> IngestConfig:
    """The ingest configuration of a provisioned layout (its buckets, keys and anchor bucket)."""
    return IngestConfig(raw_bucket=layout.bucket("raw"),
                        features_bucket=layout.bucket("features"),
                        archive_bucket=layout.bucket("archive"), key_arn=layout.kms_key_arn,
                        archive_key_arn=layout.archive_key_arn,  # type: ignore[arg-type]
                        anchor_bucket=layout.bucket("audit"))


def _world(sandbox: Sandbox, *, speaker_keys: bool = False):  # type: ignore[no-untyped-def]
    """Provisioned account (with per-speaker keys if ``speaker_keys``), the manifest's consents
    recorded by the admin, two samples of one speaker uploaded by the uploader role through the
    read-only consent gate, then ingested by the ingest role with exactly its policy (which
    admits them: claims and index entries; under SpeakerKeyConfig it also creates the
    speaker's key)."""
    import dataclasses

    from securepipe.retention.consent import ReadOnlyConsentGate
    from securepipe.retention.shredding import SpeakerKeyConfig

    layout = provision(sandbox.session, AccountLayout.for_session(
        sandbox.session, speaker_keys=speaker_keys)).layout
    assert layout.speaker_keys == speaker_keys
    manifest = load_manifest()
    admin_registry = ConsentRegistry(sandbox.session, layout.consent_table, create=False)
    admin_registry.load_manifest_consents(manifest, rebase_to=clock.now().date())
    items = items_from_manifest(manifest)
    speaker = items[0].speaker
    mine = [i for i in items if i.speaker == speaker][:2]
    uploader = _as_role(sandbox, layout, "uploader")
    gate = ReadOnlyConsentGate(ConsentRegistry(uploader, layout.consent_table, create=False,
                                               anchor_bucket=layout.bucket("audit")))
    envelope = Envelope(uploader, EnvelopeConfig(key_arns=layout.kms_key_arn))
    for u in manifest.utterances:
        if any((u.contractor, u.sample_id) == (i.contractor, i.sample_id) for i in mine):
            upload_sample(uploader, envelope, manifest.path_of(u), bucket=layout.bucket("raw"),
                          key_arn=layout.kms_key_arn, consent=gate, speaker=speaker,
                          context=SampleContext(u.contractor, u.sample_id,
                                                "speech-model-training"))
    worker = _as_role(sandbox, layout, "ingest")
    config = _ingest_config(layout)
    if speaker_keys:
        config = dataclasses.replace(config, speaker_keys=SpeakerKeyConfig(
            layout.consent_table, layout.kms_key_arn, anchor_bucket=layout.bucket("audit")))
    report = ingest_batch(mine, config, lambda: worker)
    assert report.count("processed") == len(mine), report.outcomes
    return layout, admin_registry, speaker, mine, uploader, worker, gate, config


def _consent_world(sandbox: Sandbox):  # type: ignore[no-untyped-def]
    """:func:`_world` without speaker keys: (layout, admin registry, speaker, samples,
    uploader, worker, gate)."""
    return _world(sandbox)[:7]


def test_uploader_gates_on_consent_and_cannot_touch_the_registry(sandbox: Sandbox) -> None:
    """F5: the uploader role reads a speaker's consent fields (and nothing else of the
    registry) so a consent-gated upload runs under it; a withdrawn speaker is refused before
    anything is written; the uploader writes nothing in the registry."""
    from securepipe.errors import ConsentError

    layout, admin_registry, speaker, mine, uploader, _, gate = _consent_world(sandbox)
    assert {f"{i.contractor}/{i.sample_id}" for i in mine} <= admin_registry.get(speaker).samples
    other = next(s.speaker for s in load_manifest().speakers if s.speaker != speaker)
    admin_registry.withdraw(other, clock.now())
    manifest = load_manifest()
    theirs = next(u for u in manifest.utterances if u.speaker == other)
    envelope = Envelope(uploader, EnvelopeConfig(key_arns=layout.kms_key_arn))
    with pytest.raises(ConsentError) as refused:
        upload_sample(uploader, envelope, manifest.path_of(theirs), bucket=layout.bucket("raw"),
                      key_arn=layout.kms_key_arn, consent=gate, speaker=other,
                      context=SampleContext(theirs.contractor, theirs.sample_id,
                                            "speech-model-training"))
    assert refused.value.reason == "withdrawn"
    ddb = uploader.client("dynamodb")
    table = layout.consent_table
    key = {"speaker": {"S": speaker}}
    assert _emulation_refused(lambda: ddb.get_item(TableName=table, Key=key))  # all of it
    assert _emulation_refused(lambda: ddb.get_item(
        TableName=table, Key=key, ProjectionExpression="wrapped_key"))
    assert _emulation_refused(lambda: ddb.update_item(
        TableName=table, Key=key, UpdateExpression="ADD samples :s",
        ExpressionAttributeValues={":s": {"SS": ["c01/forged"]}}))
    assert _emulation_refused(lambda: ddb.scan(TableName=table))
    assert _emulation_refused(lambda: ConsentRegistry(uploader, table, create=False).admit(
        speaker, "s-new", contractor=mine[0].contractor, at=clock.now()))  # claims: ingest's


def test_compromised_ingest_cannot_rewrite_consent_or_erasure_state(sandbox: Sandbox) -> None:
    """F9 (a)-(c): with exactly its policy, the ingest role ran its gate above (consent read,
    claims, index); the same credentials in an attacker's hands cannot back-date erased_at,
    edit the status or the erasure head, write or read a journal item, read key material,
    or Scan. Each is refused by the emulated fine-grained access control, and the registry
    is unchanged."""
    layout, _, speaker, _, _, worker, _ = _consent_world(sandbox)
    ddb = worker.client("dynamodb")
    table = layout.consent_table
    key = {"speaker": {"S": speaker}}
    before = sandbox.session.client("dynamodb").get_item(TableName=table, Key=key)["Item"]
    attacks = {
        "(a) back-date erased_at": dict(
            Key=key, UpdateExpression="SET erased_at = :t",
            ExpressionAttributeValues={":t": {"S": "2020-01-01T00:00:00+00:00"}}),
        "(b) re-activate": dict(
            Key=key, UpdateExpression="SET #s = :a REMOVE withdrawn",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":a": {"S": "active"}}),
        "(b) edit the erasure head": dict(
            Key=key, UpdateExpression="SET erasure_head.#n = :z",
            ExpressionAttributeNames={"#n": "count"},
            ExpressionAttributeValues={":z": {"N": "0"}}),
        "(b) hidden in the index write": dict(
            Key=key, UpdateExpression="ADD samples :s SET #h = :z",
            ExpressionAttributeNames={"#h": "erasure_head"},
            ExpressionAttributeValues={":s": {"SS": ["c01/x"]}, ":z": {"N": "0"}}),
        "(b) legacy AttributeUpdates": dict(
            Key=key, AttributeUpdates={"status": {"Action": "PUT", "Value": {"S": "active"}}}),
        "(b) consent dates": dict(
            Key=key, UpdateExpression="SET consent_date = :d",
            ExpressionAttributeValues={":d": {"S": "2020-01-01"}}),
        "(c) write a journal item": dict(
            Key={"speaker": {"S": f"journal#{speaker}#0"}},
            UpdateExpression="ADD samples :s",
            ExpressionAttributeValues={":s": {"SS": ["c01/x"]}}),
        "(c) a claim-shaped journal write": dict(
            Key={"speaker": {"S": f"journal#{speaker}#0"}},
            UpdateExpression="SET claimant = :c",
            ExpressionAttributeValues={":c": {"S": speaker}}),
        "plant an erasure lease (blocks every erasure until it ends)": dict(
            Key=key, UpdateExpression="SET erasure_lease = :r, erasure_lease_until = :u",
            ExpressionAttributeValues={":r": {"S": "x" * 32},
                                       ":u": {"S": "2999-01-01T00:00:00.000000Z"}}),
        "read it all back": dict(
            Key=key, UpdateExpression="ADD samples :s", ReturnValues="ALL_OLD",
            ExpressionAttributeValues={":s": {"SS": ["c01/x"]}}),
    }
    for name, kwargs in attacks.items():
        assert _emulation_refused(lambda kw=kwargs: ddb.update_item(TableName=table, **kw)), name
    assert _emulation_refused(lambda: ddb.get_item(TableName=table, Key=key))
    assert _emulation_refused(lambda: ddb.get_item(
        TableName=table, Key=key, ProjectionExpression="#w",
        ExpressionAttributeNames={"#w": "wrapped_key"}))
    assert _emulation_refused(lambda: ddb.get_item(
        TableName=table, Key={"speaker": {"S": f"journal#{speaker}#0"}},
        ProjectionExpression="speaker"))
    # Found by an independent attacker: moto ignores the legacy AttributesToGet (the whole item,
    # wrapped key included, came back) and applies AttributeUpdates to the key attribute.
    assert _emulation_refused(lambda: ddb.get_item(
        TableName=table, Key=key, AttributesToGet=["speaker", "status"]))
    assert _emulation_refused(lambda: ddb.update_item(
        TableName=table, Key=key,
        AttributeUpdates={"speaker": {"Action": "PUT", "Value": {"S": "someone-else"}}}))
    # It lists the erasure anchors, nothing else of the audit bucket.
    s3 = worker.client("s3")
    assert _emulation_refused(lambda: s3.list_object_versions(Bucket=layout.bucket("audit")))
    assert _emulation_refused(lambda: s3.list_object_versions(
        Bucket=layout.bucket("audit"), Prefix="receipts/"))
    s3.list_object_versions(Bucket=layout.bucket("audit"), Prefix=f"erasure-journal/{speaker}/")
    # Even holding a wrapped speaker key, ingest cannot unwrap it (its Decrypt excludes the
    # speaker-key encryption context).
    context = {"securepipe:speaker": speaker}
    wrapped = sandbox.session.client("kms").encrypt(
        KeyId=layout.kms_key_arn, Plaintext=b"k" * 32, EncryptionContext=context)
    assert _emulation_refused(lambda: worker.client("kms").decrypt(
        CiphertextBlob=wrapped["CiphertextBlob"], EncryptionContext=context))
    assert _emulation_refused(lambda: ddb.scan(TableName=table))
    assert _emulation_refused(lambda: ddb.put_item(
        TableName=table, Item={"speaker": {"S": f"journal#{speaker}#0"}}))
    assert _emulation_refused(lambda: ddb.delete_item(TableName=table, Key=key))
    after = sandbox.session.client("dynamodb").get_item(TableName=table, Key=key)["Item"]
    assert after == before


def test_a_claim_repointed_by_a_compromised_ingest_is_reported_by_erasure(
        sandbox: Sandbox) -> None:
    """F9 (d): ingest writes claims, so IAM alone cannot stop it re-pointing one to another
    speaker. Erasure still reads the speaker's own index: a sample the index gives to the
    speaker and the claim to another is a conflict, reported unattributed (never deleted,
    never silently skipped), so the receipt is not complete."""
    from securepipe.encryption.signing import KmsSigner
    from securepipe.retention.erasure import erase_speaker

    layout, admin_registry, speaker, mine, _, worker, _ = _consent_world(sandbox)
    other = next(s.speaker for s in load_manifest().speakers if s.speaker != speaker)
    target = mine[0]
    worker.client("dynamodb").update_item(         # allowed: a claim's own attributes
        TableName=layout.consent_table,
        Key={"speaker": {"S": f"claim#{target.contractor}/{target.sample_id}"}},
        UpdateExpression="SET claimant = :o", ExpressionAttributeValues={":o": {"S": other}})
    assert admin_registry.claimant(target.contractor, target.sample_id) == other
    eraser = _as_role(sandbox, layout, "eraser")
    receipt = erase_speaker(eraser, speaker=speaker,
                            registry=ConsentRegistry(eraser, layout.consent_table, create=False),
                            buckets=list(layout.data_buckets),
                            signer=KmsSigner(eraser, layout.signing_key_arn),  # type: ignore[arg-type]
                            anchor_bucket=layout.bucket("audit"))
    hidden = [u for u in receipt.unattributed if f"/{target.contractor}/{target.sample_id}"
              in u.key]
    assert hidden and all(other in u.reason and speaker in u.reason for u in hidden), \
        receipt.unattributed
    assert not receipt.complete
    assert receipt.deleted      # the other sample, whose claim is intact, is erased
    assert not any(f"/{target.contractor}/{target.sample_id}" in d.key for d in receipt.deleted)


# -- per-speaker keys (AccountLayout(speaker_keys=True)) ------------------------------------

def _speaker_key_world(sandbox: Sandbox):  # type: ignore[no-untyped-def]
    """:func:`_world` with speaker keys: (layout, admin registry, speaker, samples, worker,
    ingest config)."""
    layout, admin_registry, speaker, mine, _, worker, _, config = _world(
        sandbox, speaker_keys=True)
    return layout, admin_registry, speaker, mine, worker, config


def _table_items(sandbox: Sandbox, table: str) -> list[dict[str, object]]:
    items = sandbox.session.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda i: str(i["speaker"]))


def test_ingest_with_speaker_keys_and_the_erasure_that_shreds_them_run_with_exactly_their_policies(
        sandbox: Sandbox) -> None:
    """Ingest under SpeakerKeyConfig as the ingest role: the speaker's key is created in its
    own key item (the speaker's consent item gets none), features are encrypted with it; the
    eraser role erases the speaker: the key item is deleted in the same transaction that marks
    the speaker erased, and the evidence fingerprints exactly the blob that was stored."""
    import hashlib

    from securepipe.encryption.signing import KmsSigner
    from securepipe.errors import ConsentError, DecryptionError
    from securepipe.features.extract import from_bytes
    from securepipe.retention.erasure import erase_speaker

    layout, admin_registry, speaker, mine, worker, config = _speaker_key_world(sandbox)
    ddb = sandbox.session.client("dynamodb")
    table = layout.consent_table
    key_item = ddb.get_item(TableName=table, Key={"speaker": {"S": f"key#{speaker}"}},
                            ConsistentRead=True)["Item"]
    assert set(key_item) == {"speaker", "wrapped_key", "key_id", "key_arn", "key_created_at"}
    consent_item = ddb.get_item(TableName=table, Key={"speaker": {"S": speaker}})["Item"]
    assert "wrapped_key" not in consent_item and "key_id" not in consent_item
    assert admin_registry.get(speaker).has_key
    admin_keys = config.speaker_keys.keys(sandbox.session)
    item = mine[0]
    body = sandbox.session.client("s3").get_object(
        Bucket=layout.bucket("features"), Key=config.features_key(item))["Body"].read()
    context = SampleContext(item.contractor, item.sample_id, config.features_purpose)
    with pytest.raises(DecryptionError):               # not under the shared key
        Envelope(sandbox.session, EnvelopeConfig(key_arns=layout.kms_key_arn)).decrypt_bytes(
            body, context)
    assert from_bytes(admin_keys.envelope(speaker).decrypt_bytes(body, context))[0].size
    assert ingest_batch(mine, config, lambda: worker).count("processed") == len(mine)  # re-run

    eraser = _as_role(sandbox, layout, "eraser")
    receipt = erase_speaker(eraser, speaker=speaker,
                            registry=ConsentRegistry(eraser, table, create=False),
                            buckets=list(layout.data_buckets),
                            signer=KmsSigner(eraser, layout.signing_key_arn),
                            anchor_bucket=layout.bucket("audit"))
    assert receipt.shredding is not None and receipt.shredding.shredded
    assert receipt.shredding.wrapped_key_sha256 == hashlib.sha256(
        key_item["wrapped_key"]["B"]).hexdigest()
    assert receipt.shredding.key_id == key_item["key_id"]["S"]
    assert not receipt.shredding.registry_has_key_after
    assert "Item" not in ddb.get_item(TableName=table, Key={"speaker": {"S": f"key#{speaker}"}},
                                      ConsistentRead=True)
    after = admin_registry.get(speaker)
    assert after.status == "erased" and not after.has_key
    assert after.key_id == key_item["key_id"]["S"]       # the shredded key's handle is kept
    with pytest.raises(DecryptionError):
        admin_keys.envelope(speaker).decrypt_bytes(body, context)
    # ingest has no key of an erased speaker to read, and cannot make one
    worker_keys = config.speaker_keys.keys(worker)
    assert worker_keys.registry.wrapped_key(speaker) == (None, "erased")
    with pytest.raises(ConsentError):
        worker_keys.ensure(speaker)
    assert "Item" not in ddb.get_item(TableName=table, Key={"speaker": {"S": f"key#{speaker}"}},
                                      ConsistentRead=True)


def test_compromised_speaker_key_ingest_cannot_touch_consent_journal_or_keys(
        sandbox: Sandbox) -> None:
    """With exactly its speaker-key policy, the ingest role's credentials in an attacker's
    hands cannot change a consent field, the status, erased_at or the erasure head (alone or
    inside a transaction), read or write a journal item, delete a key item, read a key item
    whole or a key from a speaker's item, overwrite a key through the kit's own store, ask a
    failed condition for the whole item, or use the speaker-key context beyond wrapping keys.
    Each is refused by the emulated IAM, and the table is unchanged after."""
    from securepipe.errors import EncryptionError

    layout, _, speaker, _, worker, config = _speaker_key_world(sandbox)
    ddb = worker.client("dynamodb")
    table = layout.consent_table
    key = {"speaker": {"S": speaker}}
    key_key = {"speaker": {"S": f"key#{speaker}"}}
    journal = {"speaker": {"S": f"journal#{speaker}#0"}}
    before = _table_items(sandbox, table)
    stored = next(i for i in before if i["speaker"] == key_key["speaker"])

    def check(condition: str, **extra: object) -> dict[str, object]:
        return {"ConditionCheck": {"TableName": table, "Key": key,
                                   "ConditionExpression": condition, **extra}}

    def put(item: dict[str, object], **extra: object) -> dict[str, object]:
        return {"Put": {"TableName": table, "Item": item, **extra}}

    transactions = {
        "update a key item beside the kit's own check": [
            check("attribute_exists(speaker)"),
            {"Update": {"TableName": table, "Key": key_key, "UpdateExpression": "SET key_id = :k",
                        "ExpressionAttributeValues": {":k": {"S": "x"}}}}],
        "back-date erased_at beside a key creation": [
            {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET erased_at = :t",
                        "ExpressionAttributeValues": {":t": {"S": "2020-01-01T00:00:00+00:00"}}}},
            put({**stored, "speaker": {"S": "key#someone"}},
                ConditionExpression="attribute_not_exists(speaker)")],
        "edit the status": [{"Update": {
            "TableName": table, "Key": key, "UpdateExpression": "SET #s = :a",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":a": {"S": "active"}}}}],
        "edit the erasure head": [{"Update": {
            "TableName": table, "Key": key, "UpdateExpression": "REMOVE erasure_head"}}],
        "write a journal item": [put({**journal, "seq": {"N": "0"}})],
        "delete the key item": [{"Delete": {"TableName": table, "Key": key_key}}],
        "a key item carrying a consent field": [
            put({**stored, "speaker": {"S": "key#spk99"}, "status": {"S": "active"}})],
        "a key in the speaker's own item": [put({**key, "wrapped_key": stored["wrapped_key"]})],
        "the whole speaker item on a failed check": [
            check("#s = :x", ExpressionAttributeNames={"#s": "status"},
                  ExpressionAttributeValues={":x": {"S": "nope"}},
                  ReturnValuesOnConditionCheckFailure="ALL_OLD")],
        "probe the sample index": [check("contains(samples, :s)",
                                         ExpressionAttributeValues={":s": {"S": "c01/x"}})],
    }
    for name, items in transactions.items():
        assert _emulation_refused(lambda i=items: ddb.transact_write_items(TransactItems=i)), name
    assert _emulation_refused(lambda: ddb.delete_item(TableName=table, Key=key_key))
    assert _emulation_refused(lambda: ddb.put_item(TableName=table, Item=stored))  # not in a tx
    assert _emulation_refused(lambda: ddb.get_item(TableName=table, Key=key_key))   # whole item
    assert _emulation_refused(lambda: ddb.get_item(TableName=table, Key=journal,
                                                   ProjectionExpression="speaker"))
    assert _emulation_refused(lambda: ddb.get_item(TableName=table, Key=key,
                                                   ProjectionExpression="wrapped_key"))
    assert _emulation_refused(lambda: ddb.scan(TableName=table))
    # the kit's own store never replaces a key: its Put is conditioned on none existing
    registry = config.speaker_keys.keys(worker).registry
    assert not registry.store_wrapped_key(speaker, key_id="sk-forged", blob=b"x" * 40,
                                          kms_key_arn=layout.kms_key_arn, when=clock.now())
    # the speaker-key context only for wrapping keys: no plaintext data key under it, no other
    # context key beside it, no other key
    kms = worker.client("kms")
    context = {"securepipe:speaker": speaker}
    assert _emulation_refused(lambda: kms.generate_data_key(
        KeyId=layout.kms_key_arn, KeySpec="AES_256", EncryptionContext=context))
    assert _emulation_refused(lambda: kms.generate_data_key_without_plaintext(
        KeyId=layout.kms_key_arn, KeySpec="AES_256",
        EncryptionContext={**context, "securepipe:trail": "x"}))
    assert _emulation_refused(lambda: kms.generate_data_key_without_plaintext(
        KeyId=layout.archive_key_arn, KeySpec="AES_256", EncryptionContext=context))
    assert _table_items(sandbox, table) == before
    # ... and a speaker whose consent is withdrawn gets no key, even from the role's own path
    other = next(s.speaker for s in load_manifest().speakers if s.speaker != speaker)
    ConsentRegistry(sandbox.session, table, create=False).withdraw(other, clock.now())
    before = _table_items(sandbox, table)
    assert not registry.store_wrapped_key(other, key_id="sk-x", blob=b"x" * 40,
                                          kms_key_arn=layout.kms_key_arn, when=clock.now())
    with pytest.raises(EncryptionError):
        config.speaker_keys.keys(worker).envelope(other).encrypt_bytes(
            b"x", SampleContext("c01", "s-1", "speech-features"))
    assert _table_items(sandbox, table) == before


def test_what_iam_cannot_stop_a_compromised_speaker_key_ingest(sandbox: Sandbox) -> None:
    """Stated, not hidden: IAM has no condition key for a request's ConditionExpression, so the
    role allowed to create key items (a Put inside a transaction) can also send a Put with no
    condition over an existing key item. Every ciphertext made with the old key then fails to
    decrypt (an unauthorised shredding: nothing is disclosed). It can also unwrap any active
    speaker's key, which it needs to encrypt for them. Point-in-time recovery of the consent
    table restores a replaced key item."""
    from securepipe.errors import DecryptionError

    layout, admin_registry, speaker, mine, worker, config = _speaker_key_world(sandbox)
    table = layout.consent_table
    item = mine[0]
    body = sandbox.session.client("s3").get_object(
        Bucket=layout.bucket("features"), Key=config.features_key(item))["Body"].read()
    context = SampleContext(item.contractor, item.sample_id, config.features_purpose)
    wrapped, _ = config.speaker_keys.keys(worker).registry.wrapped_key(speaker)
    assert wrapped is not None
    kms = worker.client("kms")
    assert len(kms.decrypt(CiphertextBlob=wrapped.blob,
                           EncryptionContext={"securepipe:speaker": speaker})["Plaintext"]) == 32
    fresh = kms.generate_data_key_without_plaintext(
        KeyId=layout.kms_key_arn, KeySpec="AES_256",
        EncryptionContext={"securepipe:speaker": speaker})["CiphertextBlob"]
    worker.client("dynamodb").transact_write_items(TransactItems=[{"Put": {
        "TableName": table, "Item": {
            "speaker": {"S": f"key#{speaker}"}, "wrapped_key": {"B": fresh},
            "key_id": {"S": wrapped.key_id}, "key_arn": {"S": wrapped.kms_key_arn}}}}])
    with pytest.raises(DecryptionError):
        config.speaker_keys.keys(sandbox.session).envelope(speaker).decrypt_bytes(body, context)
    assert admin_registry.get(speaker).status == "active"


def _erase(sandbox: Sandbox, layout: AccountLayout, speaker: str):  # type: ignore[no-untyped-def]
    from securepipe.encryption.signing import KmsSigner
    from securepipe.retention.erasure import erase_speaker

    eraser = _as_role(sandbox, layout, "eraser")
    return erase_speaker(eraser, speaker=speaker,
                         registry=ConsentRegistry(eraser, layout.consent_table, create=False),
                         buckets=list(layout.data_buckets),
                         signer=KmsSigner(eraser, layout.signing_key_arn),
                         anchor_bucket=layout.bucket("audit"))


@pytest.mark.parametrize("shape", ["list-wrapped blob", "key_arn not an ARN"])
def test_a_malformed_key_item_planted_by_ingest_never_stops_the_erasure(
        sandbox: Sandbox, shape: str) -> None:
    """Attacker finding (high): a key item ingest re-wrote in a shape the kit does not read
    made every erasure of that speaker raise, leaving the blob in the table. Erasure now
    deletes whatever is at ``key#<speaker>`` and marks the speaker erased."""
    layout, admin_registry, speaker, _, worker, config = _speaker_key_world(sandbox)
    table = layout.consent_table
    wrapped, _ = config.speaker_keys.keys(worker).registry.wrapped_key(speaker)
    assert wrapped is not None
    blob: dict[str, object] = ({"L": [{"B": wrapped.blob}]} if shape == "list-wrapped blob"
                               else {"B": wrapped.blob})
    arn = "x" if shape == "key_arn not an ARN" else wrapped.kms_key_arn
    worker.client("dynamodb").transact_write_items(TransactItems=[{"Put": {
        "TableName": table, "Item": {"speaker": {"S": f"key#{speaker}"}, "wrapped_key": blob,
                                     "key_id": {"S": wrapped.key_id}, "key_arn": {"S": arn}}}}])
    assert admin_registry.get(speaker).has_key          # read, not refused
    receipt = _erase(sandbox, layout, speaker)
    assert receipt.status == "erased" and receipt.shredding is not None
    assert receipt.shredding.shredded and not receipt.shredding.registry_has_key_after
    assert "Item" not in sandbox.session.client("dynamodb").get_item(
        TableName=table, Key={"speaker": {"S": f"key#{speaker}"}}, ConsistentRead=True)
    assert admin_registry.get(speaker).status == "erased"


def test_the_eraser_cannot_plant_a_speaker_key_it_knows(sandbox: Sandbox) -> None:
    """Attacker finding (high): the eraser's GenerateDataKey was unconditioned and its
    UpdateItem reached key items, so it could mint a speaker key with its plaintext, store it
    as ``key#<speaker>`` and read the features ingest then encrypted with it."""
    layout, admin_registry, speaker, _, _, _ = _speaker_key_world(sandbox)
    victim = next(r.speaker for r in admin_registry.speakers()
                  if r.speaker != speaker and not r.has_key)
    eraser = _as_role(sandbox, layout, "eraser")
    before = _table_items(sandbox, layout.consent_table)
    with pytest.raises(ClientError) as refused:
        eraser.client("kms").generate_data_key(
            KeyId=layout.kms_key_arn, KeySpec="AES_256",
            EncryptionContext={"securepipe:speaker": victim})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as refused:
        eraser.client("dynamodb").update_item(
            TableName=layout.consent_table, Key={"speaker": {"S": f"key#{victim}"}},
            UpdateExpression="SET wrapped_key = :b, key_id = :k, key_arn = :a",
            ExpressionAttributeValues={":b": {"B": b"\x01" * 32}, ":k": {"S": "sk-planted"},
                                       ":a": {"S": layout.kms_key_arn}})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert _table_items(sandbox, layout.consent_table) == before


def test_copies_of_a_key_in_the_registry_go_with_it_and_a_recreated_key_is_shredded_again(
        sandbox: Sandbox) -> None:
    """Attacker finding (medium): ingest copied a wrapped key to other key items before the
    erasure; the receipt said the only copy was gone, and a key item re-created afterwards was
    used to decrypt. Names no speaker can have are refused; a copy under another valid id is
    reported by scan() and deleted by the shredding (and named in its note); a key item
    re-created after the erasure shows on the record and goes with a re-run."""
    from securepipe.errors import DecryptionError

    layout, admin_registry, speaker, mine, worker, config = _speaker_key_world(sandbox)
    table = layout.consent_table
    ddb = worker.client("dynamodb")
    wrapped, _ = config.speaker_keys.keys(worker).registry.wrapped_key(speaker)
    assert wrapped is not None

    def put(name: str) -> None:
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": {
            "speaker": {"S": name}, "wrapped_key": {"B": wrapped.blob},
            "key_id": {"S": wrapped.key_id}, "key_arn": {"S": wrapped.kms_key_arn}}}}])

    for name in (f"key#{speaker}#x", "key#", f"key#{speaker}/x", f"key#{speaker}.bak"):
        with pytest.raises(ClientError) as refused:
            put(name)
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException", name
    item = mine[0]
    kept = sandbox.session.client("s3").get_object(     # a copy taken before the erasure
        Bucket=layout.bucket("features"), Key=config.features_key(item))["Body"].read()
    context = SampleContext(item.contractor, item.sample_id, config.features_purpose)
    put(f"key#{speaker}-bak")                           # a valid speaker id: IAM cannot tell
    assert any(e.speaker == f"key#{speaker}-bak" for e in admin_registry.scan()[1])
    receipt = _erase(sandbox, layout, speaker)
    assert receipt.shredding is not None and f"key#{speaker}-bak" in receipt.shredding.note
    left = [i["speaker"]["S"] for i in _table_items(sandbox, table)
            if i.get("wrapped_key", {}).get("B") == wrapped.blob]
    assert left == []
    # A blind re-creation after the erasure by a role that kept the blob (it could unwrap it
    # anyway) is visible (erased, with key material) and a re-run of the erasure removes it.
    put(f"key#{speaker}")
    assert admin_registry.get(speaker).status == "erased" and admin_registry.get(speaker).has_key
    again = _erase(sandbox, layout, speaker)
    assert again.shredding is not None and again.shredding.shredded
    assert not admin_registry.get(speaker).has_key
    with pytest.raises(DecryptionError):
        config.speaker_keys.keys(sandbox.session).envelope(speaker).decrypt_bytes(kept, context)


def test_speaker_key_ingest_has_no_condition_oracle_on_a_key_kept_in_a_speakers_item(
        sandbox: Sandbox) -> None:
    """Attacker finding (medium): the store's ConditionCheck named ``wrapped_key``, so ingest
    could binary-search a key an earlier release kept in the speaker's own item (865
    ConditionChecks for a 96-byte blob). It now names ``key_arn``, which is no secret."""
    layout, _, speaker, _, worker, _ = _speaker_key_world(sandbox)
    with pytest.raises(ClientError) as refused:
        worker.client("dynamodb").transact_write_items(TransactItems=[
            {"ConditionCheck": {"TableName": layout.consent_table,
                                "Key": {"speaker": {"S": speaker}},
                                "ConditionExpression": "wrapped_key < :b",
                                "ExpressionAttributeValues": {":b": {"B": b"\x80"}}}}])
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"


# -- the trainer with speaker keys -----------------------------------------------------------

def _trainer_reads(sandbox: Sandbox, layout: AccountLayout, trainer: boto3.Session,
                   config: IngestConfig) -> dict[str, tuple[str, SampleContext, bytes]]:
    """Every features object as the trainer finds it with exactly its policy: listed, fetched,
    its speaker and sample named by the object's own metadata."""
    from securepipe.encryption.upload import META_SPEAKER

    s3 = trainer.client("s3")
    out = {}
    for obj in s3.list_objects_v2(Bucket=layout.bucket("features"),
                                  Prefix="features/")["Contents"]:
        got = s3.get_object(Bucket=layout.bucket("features"), Key=obj["Key"])
        _, contractor, sample, _ = obj["Key"].split("/")
        out[obj["Key"]] = (got["Metadata"][META_SPEAKER],
                           SampleContext(contractor, sample, config.features_purpose),
                           got["Body"].read())
    return out


def test_trainer_decrypts_speaker_key_features_with_exactly_its_policy_until_shredded(
        sandbox: Sandbox) -> None:
    """Ingest (speaker keys) writes features; the trainer role, with exactly its generated
    policy, decrypts them byte-exact (the features recomputed from the manifest's audio). Its
    decryption reads only the speaker's key item. After the eraser role shreds the speaker,
    the trainer's decryption of the same bytes fails with the one opaque DecryptionError."""
    from securepipe.encryption.signing import KmsSigner
    from securepipe.errors import DecryptionError
    from securepipe.features.audio import validate_wav
    from securepipe.features.extract import extract, to_bytes
    from securepipe.retention.erasure import erase_speaker

    layout, _, speaker, mine, _, config = _speaker_key_world(sandbox)
    manifest = load_manifest()
    expected = {}
    for u in manifest.utterances:
        if any((u.contractor, u.sample_id) == (i.contractor, i.sample_id) for i in mine):
            audio = validate_wav(manifest.path_of(u).read_bytes(), config.audio)
            expected[config.features_key(next(i for i in mine if i.sample_id == u.sample_id))] = \
                to_bytes(extract(audio.samples, audio.sample_rate, config.spec), config.spec)
    trainer = _as_role(sandbox, layout, "trainer")
    found = _trainer_reads(sandbox, layout, trainer, config)
    assert set(found) == set(expected) and len(found) == 2
    seen: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append((model.name, params["Key"]["speaker"]["S"] if "Key" in params else ""))

    trainer.events.register("before-parameter-build.dynamodb", record)
    trainer.events.register("before-parameter-build.kms", record)
    keys = config.speaker_keys.keys(trainer)
    for key, (named, context, body) in found.items():
        assert named == speaker
        assert keys.envelope(named).decrypt_bytes(body, context) == expected[key]
    # what a decryption reads: the speaker's key item, and one unwrap; no consent field
    assert seen == [("GetItem", f"key#{speaker}"), ("Decrypt", "")] * 2, seen

    eraser = _as_role(sandbox, layout, "eraser")
    receipt = erase_speaker(eraser, speaker=speaker,
                            registry=ConsentRegistry(eraser, layout.consent_table, create=False),
                            buckets=list(layout.data_buckets),
                            signer=KmsSigner(eraser, layout.signing_key_arn),
                            anchor_bucket=layout.bucket("audit"))
    assert receipt.shredding is not None and receipt.shredding.shredded
    for _, (named, context, body) in found.items():    # the copies the trainer kept
        with pytest.raises(DecryptionError) as failed:
            keys.envelope(named).decrypt_bytes(body, context)
        assert str(failed.value) == str(DecryptionError()) and failed.value.__cause__ is None
    assert keys.registry.key_item(speaker) is None


def test_compromised_speaker_key_trainer_can_only_read_and_unwrap_keys(
        sandbox: Sandbox) -> None:
    """The trainer's speaker-key grant is for decrypting only. Its credentials in an
    attacker's hands cannot create, overwrite, update or delete a key item (alone or in a
    transaction), read a key item whole, read a consent field or the status of a speaker's
    item, read a journal item, Scan, or make a data key (GenerateDataKey*, under the speaker
    context or not); its Decrypt under the speaker context takes no other context key and no
    other KMS key. Each is refused by the emulated IAM, and the table is unchanged. Without
    speaker keys, the trainer cannot unwrap a speaker key at all."""
    layout, _, speaker, _, _, _ = _speaker_key_world(sandbox)
    trainer = _as_role(sandbox, layout, "trainer")
    ddb, kms = trainer.client("dynamodb"), trainer.client("kms")
    table = layout.consent_table
    key = {"speaker": {"S": speaker}}
    key_key = {"speaker": {"S": f"key#{speaker}"}}
    before = _table_items(sandbox, table)
    stored = next(i for i in before if i["speaker"] == key_key["speaker"])
    fresh = sandbox.session.client("kms").generate_data_key_without_plaintext(
        KeyId=layout.kms_key_arn, KeySpec="AES_256",
        EncryptionContext={"securepipe:speaker": speaker})["CiphertextBlob"]
    forged = {**stored, "wrapped_key": {"B": fresh}}
    other_key = {**forged, "speaker": {"S": "key#spk-nobody"}}
    fields = {f"#a{n}": f for n, f in enumerate(("speaker", "status"))}
    attacks = {
        "overwrite a key item": lambda: ddb.put_item(TableName=table, Item=forged),
        "create a key item": lambda: ddb.put_item(
            TableName=table, Item=other_key, ConditionExpression="attribute_not_exists(speaker)"),
        "overwrite in a transaction": lambda: ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": forged}}]),
        "create beside the kit's check": lambda: ddb.transact_write_items(TransactItems=[
            {"ConditionCheck": {"TableName": table, "Key": key,
                                "ConditionExpression": "attribute_exists(speaker)"}},
            {"Put": {"TableName": table, "Item": other_key,
                     "ConditionExpression": "attribute_not_exists(speaker)"}}]),
        "update a key item": lambda: ddb.update_item(
            TableName=table, Key=key_key, UpdateExpression="SET wrapped_key = :b",
            ExpressionAttributeValues={":b": {"B": fresh}}),
        "delete a key item": lambda: ddb.delete_item(TableName=table, Key=key_key),
        "delete in a transaction": lambda: ddb.transact_write_items(TransactItems=[
            {"Delete": {"TableName": table, "Key": key_key}}]),
        "check a key item": lambda: ddb.transact_write_items(TransactItems=[
            {"ConditionCheck": {"TableName": table, "Key": key_key,
                                "ConditionExpression": "attribute_exists(speaker)"}}]),
        "read a key item whole": lambda: ddb.get_item(TableName=table, Key=key_key),
        "read the status": lambda: ddb.get_item(
            TableName=table, Key=key, ProjectionExpression="#a0, #a1",
            ExpressionAttributeNames=fields),
        "read consent fields": lambda: ddb.get_item(
            TableName=table, Key=key, ProjectionExpression="consent_date"),
        "read a consent field as a key field": lambda: ddb.get_item(
            TableName=table, Key=key, ProjectionExpression="speaker"),
        "read a journal item": lambda: ddb.get_item(
            TableName=table, Key={"speaker": {"S": f"journal#{speaker}#0"}},
            ProjectionExpression="speaker"),
        "read a claim": lambda: ddb.get_item(
            TableName=table, Key={"speaker": {"S": "claim#c01/s-1"}},
            ProjectionExpression="speaker, claimant"),
        "scan": lambda: ddb.scan(TableName=table),
        "a data key under the speaker context": lambda: kms.generate_data_key(
            KeyId=layout.kms_key_arn, KeySpec="AES_256",
            EncryptionContext={"securepipe:speaker": speaker}),
        "a wrapped key under the speaker context": lambda: kms.generate_data_key_without_plaintext(
            KeyId=layout.kms_key_arn, KeySpec="AES_256",
            EncryptionContext={"securepipe:speaker": speaker}),
        "a data key": lambda: kms.generate_data_key(KeyId=layout.kms_key_arn, KeySpec="AES_256"),
        "unwrap with another context key beside": lambda: kms.decrypt(
            CiphertextBlob=fresh, KeyId=layout.kms_key_arn,
            EncryptionContext={"securepipe:speaker": speaker, "securepipe:trail": "x"}),
        "unwrap under another key": lambda: kms.decrypt(
            CiphertextBlob=fresh, KeyId=layout.archive_key_arn,
            EncryptionContext={"securepipe:speaker": speaker}),
    }
    for name, attack in attacks.items():
        assert _emulation_refused(attack), name
    assert _table_items(sandbox, table) == before
    # what it may do: read a key item's key fields, and unwrap under the speaker context alone
    assert _keys_read(ddb, table, key_key)["wrapped_key"] == stored["wrapped_key"]
    assert len(kms.decrypt(CiphertextBlob=fresh, KeyId=layout.kms_key_arn, EncryptionContext={
        "securepipe:speaker": speaker})["Plaintext"]) == 32
    # without speaker keys the trainer's Decrypt excludes the speaker-key context
    plain = kit_role_policy("trainer", dataclasses.replace(layout, speaker_keys=False))
    request = Request("kms:Decrypt", layout.kms_key_arn,
                      f"arn:aws:sts::{sandbox.account_id}:assumed-role/securepipe-trainer/s",
                      {"kms:EncryptionContext:securepipe:speaker": speaker,
                       "kms:EncryptionContextKeys": ["securepipe:speaker"]})
    assert not evaluate(request, identity=[Policy.from_document("t", plain)]).allowed
    assert evaluate(request, identity=[Policy.from_document(
        "t", kit_role_policy("trainer", layout))]).allowed


def _keys_read(ddb: Any, table: str, key: dict[str, Any]) -> dict[str, Any]:
    """A key item as the kit reads it: projected on the key fields."""
    from securepipe.retention.consent import KEY_FIELDS

    names = {f"#a{n}": a for n, a in enumerate(KEY_FIELDS)}
    return dict(ddb.get_item(TableName=table, Key=key, ConsistentRead=True,
                             ProjectionExpression=", ".join(names),
                             ExpressionAttributeNames=names)["Item"])


def test_shredding_never_deletes_another_speakers_own_key(sandbox: Sandbox) -> None:
    """Found by an independent attacker: ingest planted another speaker's genuine wrapped key
    as this speaker's key item; shredding this speaker deleted every key item holding that
    blob, the other speaker's own included, so their data no longer decrypted. A registered
    speaker's own key item is kept and named in the note; a copy under a name of no speaker,
    in any attribute or as base64, is deleted."""
    import base64

    layout, admin_registry, speaker, _, worker, config = _speaker_key_world(sandbox)
    table = layout.consent_table
    other = next(r.speaker for r in admin_registry.speakers() if r.speaker != speaker)
    admin_keys = config.speaker_keys.keys(sandbox.session)
    admin_keys.ensure(other)
    theirs = sandbox.session.client("dynamodb").get_item(
        TableName=table, Key={"speaker": {"S": f"key#{other}"}})["Item"]
    ddb = worker.client("dynamodb")

    def put(name: str, **attrs: dict[str, object]) -> None:
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": {
            "speaker": {"S": name}, "key_id": theirs["key_id"], "key_arn": theirs["key_arn"],
            **attrs}}}])

    blob = theirs["wrapped_key"]["B"]
    put(f"key#{speaker}", wrapped_key={"B": blob})            # the other's key, planted
    put(f"key#{speaker}-b64", wrapped_key={"B": b"x"},
        key_created_at={"S": base64.b64encode(blob).decode()})
    receipt = _erase(sandbox, layout, speaker)
    assert receipt.shredding is not None and f"key#{other}" in receipt.shredding.note
    assert f"key#{speaker}-b64" in receipt.shredding.note
    left = {i["speaker"]["S"] for i in _table_items(sandbox, table)}
    assert f"key#{other}" in left and f"key#{speaker}-b64" not in left
    assert admin_registry.get(other).has_key
    context = SampleContext("c99", "x1", config.features_purpose)
    envelope = admin_keys.envelope(other)
    assert envelope.decrypt_bytes(envelope.encrypt_bytes(b"theirs", context), context) == b"theirs"
