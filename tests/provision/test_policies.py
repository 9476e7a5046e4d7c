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
    receipt = erase_speaker(eraser, speaker=speaker, registry=registry,
                            buckets=list(layout.data_buckets), signer=signer,
                            anchor_bucket=layout.bucket("audit"))
    assert receipt.deleted and not receipt.unattributed
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


def _consent_world(sandbox: Sandbox):  # type: ignore[no-untyped-def]
    """Provisioned account, the manifest's consents recorded by the admin, two samples of one
    speaker uploaded by the uploader role through the read-only consent gate, then ingested by
    the ingest role (which admits them: claims and index entries)."""
    from securepipe.retention.consent import ReadOnlyConsentGate

    layout = provision(sandbox.session).layout
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
    report = ingest_batch(mine, config, lambda: worker)
    assert report.count("processed") == len(mine), report.outcomes
    return layout, admin_registry, speaker, mine, uploader, worker, gate


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
