"""Bucket hardening for voice data: one function applies it, another inspects any bucket.

The controls (each a finding id):

========================  ======================================================================
``default-encryption``    default SSE-KMS with the customer-managed key (not ``aws/s3``)
``bucket-key``            S3 Bucket Key on (fewer KMS calls for SSE-KMS)
``tls-only``              bucket policy denies every request without TLS (``aws:SecureTransport``)
``sse-kms-enforced``      bucket policy denies PutObject without SSE-KMS or with another KMS key
``public-access-block``   all four Block Public Access flags on the bucket
``account-public-access`` all four Block Public Access flags on the account
``versioning``            versioning on (deletes leave recoverable versions; erasure is explicit)
``object-ownership``      ``BucketOwnerEnforced``: ACLs off, the account owns every object
========================  ======================================================================

The inspector reads the configuration through the API and decides the policy controls by
*evaluating* the bucket policy (:mod:`securepipe.policy`) against probe requests, not by looking
for a familiar statement, so an equivalent policy passes and a subtly broken one fails. Step 6's
scorecard reuses :func:`inspect_bucket`.

In the sandbox, moto stores these settings but enforces few of them (see
:mod:`securepipe.sandbox.gaps`): the bucket-policy denies are enforced by the kit's emulation
(:mod:`securepipe.sandbox.emulation`); Block Public Access and object ownership are checked, and AWS
enforces them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.exceptions import ClientError

from securepipe.clients import shared_client
from securepipe.errors import InvalidParameterError
from securepipe.ids import check_session, validate_bucket_name, validate_kms_key_arn
from securepipe.merge import merge_bucket_policy
from securepipe.policy import Policy, Request, evaluate

CONTROLS: tuple[str, ...] = (
    "default-encryption", "bucket-key", "tls-only", "sse-kms-enforced", "public-access-block",
    "account-public-access", "versioning", "object-ownership",
)
_PAB = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@dataclass(frozen=True)
class Finding:
    """One control on one bucket: ``pass``, ``fail``, or ``error`` (could not evaluate)."""

    control: str
    bucket: str
    status: Literal["pass", "fail", "error"]
    evidence: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def sse_kms_put_args(key_arn: str) -> dict[str, Any]:
    """The PutObject/CopyObject arguments a hardened bucket requires (SSE-KMS, pinned key)."""
    validate_kms_key_arn(key_arn)
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn, "BucketKeyEnabled": True}


#: The Sids of the statements that pin uploads to SSE-KMS with the customer-managed key.
SSE_STATEMENTS = ("DenyPutWithOtherEncryption", "DenyKmsPutWithoutKeyId", "DenyPutWithOtherKmsKey")


def hardened_bucket_policy(bucket: str, key_arn: str) -> dict[str, Any]:
    """The bucket policy: deny non-TLS requests, and uploads that name any encryption other than
    SSE-KMS with the customer-managed key.

    S3 authorises UploadPart and CompleteMultipartUpload as ``s3:PutObject`` and those requests
    carry no ``x-amz-server-side-encryption*`` header (only CreateMultipartUpload does), so the
    common "deny PutObject unless the header says aws:kms" statement also denies every part of
    a multipart upload (boto/botocore#471, aws/aws-cli#4251). ``StringNotEqualsIfExists`` does not
    help in a Deny: an ``...IfExists`` condition on an absent key evaluates to true
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists),
    so it still denies the parts. Each statement therefore pairs its test with a ``Null`` check
    that the header is present: a request that *names* another algorithm or another key is
    denied, and so is one that names ``aws:kms`` without a key id (S3 would use the AWS managed
    key ``aws/s3``);
    a request naming nothing (an UploadPart, or a PutObject with no header) is encrypted by the
    bucket's default encryption, which :func:`apply_bucket_hardening` sets to the same key
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-encryption.html). Default
    encryption is part of the control, and :func:`inspect_bucket` checks it.
    """
    validate_kms_key_arn(key_arn)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyPutWithOtherEncryption",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {
                    "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                    "Null": {"s3:x-amz-server-side-encryption": "false"},
                },
            },
            {
                "Sid": "DenyKmsPutWithoutKeyId",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {
                    "StringEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                    "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "true"},
                },
            },
            {
                "Sid": "DenyPutWithOtherKmsKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {
                    "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn},
                    "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                },
            },
        ],
    }


def apply_bucket_hardening(session: boto3.Session, bucket: str, key_arn: str) -> None:
    """Apply every bucket control to ``bucket``; safe to re-run, in any order with the kit's other
    apply functions.

    The bucket policy's statements are merged by ``Sid``
    (:func:`securepipe.merge.merge_bucket_policy`): the hardening statements are replaced in
    place and every other statement (the
    presigned-URL age cap, CloudTrail's delivery statements, your own) is kept. Account-wide
    Block Public Access is *not* changed here: it affects every bucket of the account, so it is
    its own call, :func:`apply_account_public_access_block`.

    Wraps PutBucketEncryption, PutBucketVersioning, PutPublicAccessBlock (bucket level),
    PutBucketOwnershipControls, GetBucketPolicy and PutBucketPolicy:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_Operations_Amazon_Simple_Storage_Service.html
    """
    validate_kms_key_arn(key_arn)
    bucket = validate_bucket_name(bucket)
    s3 = shared_client(check_session(session), "s3")
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
            "BucketKeyEnabled": True,
        }]},
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration=dict.fromkeys(_PAB, True)
    )
    s3.put_bucket_ownership_controls(
        Bucket=bucket,
        OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    )
    # The policy goes last: once it is on, every later call to this bucket must use TLS.
    merge_bucket_policy(s3, bucket, hardened_bucket_policy(bucket, key_arn)["Statement"])


def apply_account_public_access_block(
    session: boto3.Session, *, account_id: str | None = None
) -> None:
    """Turn on all four Block Public Access flags for the whole account (every bucket in it).

    An account-wide change, so never a side effect of a bucket function: call it once, on
    purpose. Wraps S3 Control PutPublicAccessBlock
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_control_PutPublicAccessBlock.html).
    """
    check_session(session)
    account = account_id or shared_client(session, "sts").get_caller_identity()["Account"]
    s3control_client(session).put_public_access_block(
        AccountId=account, PublicAccessBlockConfiguration=dict.fromkeys(_PAB, True)
    )


def inspect_bucket(
    session: boto3.Session, bucket: str, key_arn: str, *, account_id: str | None = None
) -> list[Finding]:
    """One :class:`Finding` per control in :data:`CONTROLS`, read from the live configuration.

    A control whose configuration cannot be read (no permission, no such bucket, throttling) is
    reported as ``error`` with the reason; it never passes by default.
    """
    validate_kms_key_arn(key_arn)
    s3 = shared_client(session, "s3")
    findings: list[Finding] = []

    def add(control: str, ok: bool, evidence: str) -> None:
        findings.append(Finding(control, bucket, "pass" if ok else "fail", evidence))

    def error(controls: Sequence[str], exc: Exception) -> None:
        for control in controls:
            findings.append(Finding(control, bucket, "error", f"could not evaluate: {exc}"))

    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"]
        rule = rules[0] if rules else {}
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        algorithm, key = default.get("SSEAlgorithm"), default.get("KMSMasterKeyID")
        add("default-encryption", algorithm == "aws:kms" and _same_key(key, key_arn),
            f"SSEAlgorithm={algorithm}, KMSMasterKeyID={key or 'aws/s3 (AWS managed)'}")
        add("bucket-key", bool(rule.get("BucketKeyEnabled")),
            f"BucketKeyEnabled={rule.get('BucketKeyEnabled', False)}")
    except ClientError as exc:
        if _code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            add("default-encryption", False, "no default encryption configured")
            add("bucket-key", False, "no default encryption configured")
        else:
            error(("default-encryption", "bucket-key"), exc)

    try:
        policy = Policy.from_document(
            "bucket-policy", s3.get_bucket_policy(Bucket=bucket)["Policy"])
        findings.extend(_policy_findings(bucket, key_arn, policy))
    except ClientError as exc:
        if _code(exc) == "NoSuchBucketPolicy":
            for control in ("tls-only", "sse-kms-enforced"):
                add(control, False, "no bucket policy")
        else:
            error(("tls-only", "sse-kms-enforced"), exc)
    except InvalidParameterError as exc:
        error(("tls-only", "sse-kms-enforced"), exc)

    try:
        pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        off = [flag for flag in _PAB if not pab.get(flag)]
        add("public-access-block", not off, "all four flags on" if not off else f"off: {off}")
    except ClientError as exc:
        if _code(exc) == "NoSuchPublicAccessBlockConfiguration":
            add("public-access-block", False, "no public access block on the bucket")
        else:
            error(("public-access-block",), exc)

    try:
        account = account_id or shared_client(session, "sts").get_caller_identity()["Account"]
        pab = s3control_client(session).get_public_access_block(AccountId=account)[
            "PublicAccessBlockConfiguration"]
        off = [flag for flag in _PAB if not pab.get(flag)]
        add("account-public-access", not off,
            "all four flags on" if not off else f"off: {off}")
    except ClientError as exc:
        if _code(exc) == "NoSuchPublicAccessBlockConfiguration":
            add("account-public-access", False, "no public access block on the account")
        else:
            error(("account-public-access",), exc)

    try:
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status", "never enabled")
        add("versioning", status == "Enabled", f"Status={status}")
    except ClientError as exc:
        error(("versioning",), exc)

    try:
        rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
        setting = rules[0]["ObjectOwnership"] if rules else "none"
        add("object-ownership", setting == "BucketOwnerEnforced", f"ObjectOwnership={setting}")
    except ClientError as exc:
        if _code(exc) == "OwnershipControlsNotFoundError":
            add("object-ownership", False, "no ownership controls (ACLs still apply)")
        else:
            error(("object-ownership",), exc)

    order = {control: i for i, control in enumerate(CONTROLS)}
    return sorted(findings, key=lambda f: order[f.control])


def failures(findings: Sequence[Finding]) -> list[Finding]:
    """The findings that did not pass (failed or could not be evaluated)."""
    return [f for f in findings if not f.passed]


def s3control_client(session: boto3.Session) -> Any:
    """An S3 Control client. AWS routes it by an ``<account>.`` host prefix; against a custom
    endpoint (the sandbox server) that prefix names no host, so it is stripped before signing."""
    client = shared_client(session, "s3control")
    if client.meta.endpoint_url.endswith(".amazonaws.com"):
        return client
    client = session.client("s3control")      # its own: a handler is registered on it
    endpoint_host = urlsplit(client.meta.endpoint_url).netloc

    def _strip_prefix(request: Any, **_: Any) -> None:
        parts = urlsplit(request.url)
        if parts.netloc.endswith("." + endpoint_host):
            request.url = urlunsplit(parts._replace(netloc=endpoint_host))

    client.meta.events.register("before-sign.s3-control", _strip_prefix)
    return client


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _same_key(configured: str | None, key_arn: str) -> bool:
    """True if the configured key is the customer key (by ARN, or by its bare key id)."""
    if not configured:
        return False  # SSE-KMS without a key id means the AWS managed key aws/s3
    return configured == key_arn or configured == key_arn.rsplit("/", 1)[-1]


def _policy_findings(bucket: str, key_arn: str, policy: Policy) -> list[Finding]:
    """Decide the three policy controls by evaluating probe requests against the policy."""
    principal = "arn:aws:iam::000000000000:user/probe"
    obj, bkt = f"arn:aws:s3:::{bucket}/probe", f"arn:aws:s3:::{bucket}"
    good_put = {"s3:x-amz-server-side-encryption": "aws:kms",
                "s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn}

    def denied(action: str, resource: str, secure: bool, extra: dict[str, str]) -> bool:
        ctx = {"aws:SecureTransport": "true" if secure else "false", **extra}
        decision = evaluate(Request(action, resource, principal, ctx), identity=None,
                            resource=[policy])
        return decision.effect == "ExplicitDeny"

    insecure = {a: denied(a, r, False, good_put if a == "s3:PutObject" else {})
                for a, r in (("s3:GetObject", obj), ("s3:PutObject", obj),
                             ("s3:ListBucket", bkt), ("s3:DeleteObject", obj))}
    compliant_put_ok = not denied("s3:PutObject", obj, True, good_put)
    secure_get_ok = not denied("s3:GetObject", obj, True, {})
    part_ok = not denied("s3:PutObject", obj, True, {})  # UploadPart: no SSE header
    no_key = denied("s3:PutObject", obj, True, {"s3:x-amz-server-side-encryption": "aws:kms"})
    aes = denied("s3:PutObject", obj, True, {"s3:x-amz-server-side-encryption": "AES256"})
    other_key = denied("s3:PutObject", obj, True, {
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id":
            key_arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"})
    blocks_legit = "" if secure_get_ok else "; but it also denies GetObject over TLS"
    open_actions = [a for a, ok in insecure.items() if not ok]
    return [
        Finding("tls-only", bucket, "pass" if not open_actions and not blocks_legit else "fail",
                ("plain-HTTP requests denied" if not open_actions
                 else f"plain HTTP still allowed for {open_actions}") + blocks_legit),
        # A request that names no encryption (every UploadPart) must be admitted: the bucket's
        # default encryption (its own control) encrypts it with the customer key.
        Finding("sse-kms-enforced", bucket,
                "pass" if no_key and aes and other_key and compliant_put_ok and part_ok
                else "fail",
                f"PutObject denied: with AES256={aes}, with aws:kms and no key id={no_key}, "
                f"with another KMS key={other_key}; allowed: with the customer key="
                f"{compliant_put_ok}, with no SSE header (multipart parts)={part_ok}"),
    ]
