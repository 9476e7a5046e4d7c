"""The one place that lists what moto stores but does not enforce, and what the kit does instead.

moto emulates the AWS API, not AWS's enforcement. A lesson that shows a control blocking an
attack must show a real refusal, so for every gap below the kit either

* ``emulate``: refuses in the sandbox with code the kit owns and tests, and the notebook labels
  that refusal as an emulation of what AWS does; or
* ``check``: verifies the configuration and says plainly that AWS (not the sandbox) enforces it.

Measured on moto 5.2.5 (see ``../shared/reference/moto-behaviour.md``); ``tests/test_moto_gaps.py``
re-probes the gaps that are cheap to probe, so a moto upgrade that closes one fails loudly and
the lesson can be revisited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Response = Literal["emulate", "check"]


@dataclass(frozen=True)
class MotoGap:
    """One control that moto accepts but does not enforce."""

    id: str
    service: str
    control: str
    moto_behaviour: str
    response: Response
    kit_action: str
    step: int


MOTO_GAPS: tuple[MotoGap, ...] = (
    MotoGap("s3-default-sse", "s3", "default SSE-KMS encryption with a customer key",
            "metadata only: bytes stored in plaintext, no KMS call, missing key accepted",
            "emulate", "client-side envelope encryption (AWS Encryption SDK) before upload; "
            "the verifier checks the bucket configuration", 1),
    MotoGap("s3-policy-conditions", "s3", "bucket-policy conditions (aws:SecureTransport, "
            "s3:x-amz-server-side-encryption)",
            "conditions in a Deny always match; Principal ignored; Allow grants ignored",
            "emulate", "the kit evaluates its own TLS-only and SSE-KMS deny statements on "
            "sandbox requests", 1),
    MotoGap("s3-public-access-block", "s3", "Block Public Access (bucket and account)",
            "stored, not enforced", "check", "verifier reads the four flags; AWS enforces", 1),
    MotoGap("sts-session-policy", "sts", "session policy passed to AssumeRole",
            "stored only: the session keeps the role's full permissions",
            "emulate", "the kit's policy evaluator intersects role and session policy on "
            "sandbox requests", 2),
    MotoGap("sts-expiry", "sts", "session expiry (DurationSeconds)",
            "not enforced, even with the clock moved on", "emulate",
            "the sandbox refuses requests signed with expired STS credentials, by a clock "
            "lessons can move", 2),
    MotoGap("iam-user-policies", "iam", "identity policies of long-term IAM users",
            "stored only while IAM authentication is off (the sandbox's default: moto's own "
            "check denies KMS policies scoped to a key ARN and matches every Deny condition)",
            "check", "the access review evaluates users' policies with the kit's evaluator; the "
            "sandbox emulates enforcement for STS sessions and bucket policies only", 2),
    MotoGap("iam-conditions", "iam", "Condition blocks (e.g. s3:prefix on ListBucket)",
            "ignored inside Allow, always match inside Deny", "emulate",
            "the evaluator implements the condition operators the kit's policies use", 2),
    MotoGap("s3-presigned-expiry", "s3", "presigned URL expiry and signature",
            "not validated", "emulate", "the sandbox verifies a presigned URL's SigV4 "
            "signature, refuses it once expired (X-Amz-Date + X-Amz-Expires, at most 7 days) "
            "and puts s3:signatureAge and s3:authType in the request context; the kit's helper "
            "caps expiry", 2),
    MotoGap("sigv4-signatures", "sts", "request signatures (SigV4), credential scope, "
            "session tokens",
            "not checked: any access key id, scope service, region, date and signature is "
            "served (a request signed for s3 reaches KMS)", "emulate",
            "every request is verified with botocore's SigV4 signer against the secret moto's "
            "IAM or STS holds; unknown or inactive keys, a wrong session token, a scope naming "
            "another service or region, SigV2 and anonymous requests are refused with "
            "AccessDenied (clock skew, the payload hash and aws-chunked chunk signatures are "
            "not checked)", 2),
    MotoGap("s3-request-reading", "s3", "one reading of each request",
            "moto reads x-amz-copy-source with urlparse, cuts ';params' off a path, acts on a "
            "multipart upload id alone (whatever key the URL names) and dispatches "
            "subresources in its own order", "emulate",
            "the emulation reads requests as moto does, binds upload ids to the key that "
            "created them, and refuses what could be read two ways: percent-encoded copy-source "
            "separators, parameters given twice, two subresources, a subresource or parameter "
            "the operation does not take, '.'/'..' segments, a body on GET/HEAD/DELETE, a Host "
            "moto could read as a bucket", 2),
    MotoGap("cloudtrail-events", "cloudtrail", "CloudTrail data events and lookup_events",
            "trails stored, no events recorded; lookup_events not implemented", "emulate",
            "the sandbox records the kit's own calls as CloudTrail-shaped events and writes "
            "them as the trail's log files (cloudtrail_logs.deliver_log_files)", 3),
    MotoGap("cloudwatch-alarms", "cloudwatch", "alarm evaluation and actions",
            "never evaluated; set_alarm_state fires no action", "emulate",
            "the kit's detector evaluates its windows and publishes alerts to SNS itself", 3),
    MotoGap("s3-request-metrics", "s3", "request metrics configuration (GetRequests)",
            "put_bucket_metrics_configuration silently not stored", "check",
            "the check says plainly that it cannot verify this in the sandbox", 3),
    MotoGap("s3-lifecycle", "s3", "lifecycle rules (expiration, transitions)",
            "round-trip only: never applied, whatever the clock", "emulate",
            "the retention sweeper enforces retention with an injectable clock; "
            "the verifier checks the rules", 5),
    MotoGap("kms-key-deletion", "kms", "disable_key / schedule_key_deletion",
            "state only: Encrypt/Decrypt keep working, even after the deletion date", "emulate",
            "crypto-shredding destroys per-speaker key material the kit holds, "
            "which is real in the sandbox and on AWS", 5),
    MotoGap("dynamodb-conditional-write", "dynamodb", "an atomic conditional write "
            "(ConditionExpression on PutItem/UpdateItem/DeleteItem), and reads that never "
            "see a write half-way",
            "reads the item, evaluates the condition and writes in separate steps: two "
            "concurrent writes can both pass one condition; an UpdateItem's actions are "
            "applied one by one, visible to a concurrent GetItem", "emulate",
            "the sandbox runs moto's DynamoDB item operations (reads too) one at a time, so "
            "a sample claim (ConsentRegistry.admit) has one winner and a concurrent erasure "
            "reads each journal entry whole, as on AWS", 5),
    MotoGap("dynamodb-fgac", "dynamodb", "fine-grained access control condition keys "
            "(dynamodb:LeadingKeys, dynamodb:Attributes, dynamodb:Select, "
            "dynamodb:ReturnValues)",
            "not computed: a role allowed UpdateItem on the table writes any attribute of any "
            "item", "emulate",
            "the sandbox reads each item request's key, expressions (a tokenizer and parser of "
            "the update, condition and projection grammars) and legacy parameters into those "
            "keys, refuses a request it cannot read unambiguously, and evaluates the kit's "
            "consent-table statements with them; a TransactWriteItems is authorised per action "
            "as AWS does (dynamodb:PutItem, UpdateItem, DeleteItem, ConditionCheckItem, each "
            "with its own keys and dynamodb:EnclosingOperation), its "
            "ReturnValuesOnConditionCheckFailure=ALL_OLD read as ReturnValues ALL_OLD (AWS "
            "documents no key for it: the stricter reading); moto runs the transaction itself "
            "(all or nothing, TransactionCanceledException with a reason per action)", 5),
    MotoGap("s3-object-lock-retention", "s3", "Object Lock retention changes and the "
            "governance bypass",
            "any caller may shorten or remove any retention (COMPLIANCE included), and any "
            "value of x-amz-bypass-governance-retention bypasses GOVERNANCE with no permission",
            "emulate", "the kit refuses weakening COMPLIANCE retention, and needs the header "
            "plus s3:BypassGovernanceRetention to weaken or bypass GOVERNANCE", 3),
    MotoGap("kms-key-policy", "kms", "key policies and grants",
            "bookkeeping only, not used to authorise", "check",
            "the checks read the key policy; AWS enforces it", 6),
    MotoGap("kms-sign-digest", "kms", "Sign with MessageType=DIGEST",
            "ignores the message type and hashes the digest again", "check",
            "the kit signs a SHA-256 digest as a RAW message, which AWS and moto treat alike", 3),
    MotoGap("kms-get-public-key-id", "kms", "GetPublicKey names the key it answered for",
            "answers KeyId with the bare key id, where AWS returns the key ARN", "check",
            "the verifier pins the key ARN and accepts the bare id only when it is that ARN's "
            "own id", 3),
    MotoGap("cloudformation-s3-bucket", "cloudformation", "AWS::S3::Bucket properties in a stack",
            "only BucketEncryption and Tags are applied: VersioningConfiguration, "
            "PublicAccessBlockConfiguration, OwnershipControls, ObjectLockEnabled, "
            "LifecycleConfiguration and MetricsConfigurations are ignored; "
            "AWS::S3::BucketPolicy, AWS::CloudTrail::Trail, AWS::SQS::QueuePolicy, "
            "AWS::SNS::Subscription and AWS::CloudWatch::Alarm are not created at all; "
            "AWS::KMS::Key ignores KeySpec and KeyUsage (the signing key comes out symmetric)",
            "check", "securepipe.provision.provision run after the stack completes them (steps "
            "buckets, object-lock, bucket-hardening, presign-cap, lifecycle, monitoring) and "
            "reports the symmetric key under the signing alias as a conflict; the scorecard "
            "checks the result", 1),
)


#: What the sandbox's emulated enforcement guarantees (each backed by a test in tests/sandbox).
EMULATION_GUARANTEES: tuple[str, ...] = (
    "every request is attributed to a principal of an open sandbox by a valid SigV4 signature, "
    "or refused with AccessDenied (in-process and in server mode)",
    "S3 and KMS requests are decided on the reading moto acts on (bucket, key, copy source, "
    "upload id's key, KMS key); a request that could be read two ways is refused",
    "STS sessions are decided by the role's policies, the session policy, the bucket policy "
    "and expiry, with AWS's rules for which principal a bucket policy names",
    "bucket policies (TLS-only, SSE-KMS pinning, presigned-URL age caps, aws:SourceIp) are "
    "evaluated for every principal, the admin included",
)


#: What it does not (AWS does; the sandbox does not pretend).
EMULATION_LIMITS: tuple[str, ...] = (
    "it is an emulation of AWS's documented rules, not AWS: where the two differ, AWS wins",
    "IAM users' own identity policies are not enforced (moto's IAM check is off)",
    "key policies, grants, SCPs, permissions boundaries and VPC endpoint policies are not "
    "evaluated",
    "clock skew, the payload hash and aws-chunked chunk signatures are not verified; SigV2 "
    "and browser-form POST uploads are refused rather than checked",
    "services other than S3 and KMS are authenticated, and decided only for role sessions",
)


def gaps_for_step(step: int) -> tuple[MotoGap, ...]:
    """The gaps a given step of the kit has to work around."""
    return tuple(gap for gap in MOTO_GAPS if gap.step == step)


def gap(gap_id: str) -> MotoGap:
    """Look a gap up by id (raises ``KeyError`` for an unknown id)."""
    for entry in MOTO_GAPS:
        if entry.id == gap_id:
            return entry
    raise KeyError(gap_id)
