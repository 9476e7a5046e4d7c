"""Emulated AWS enforcement for requests that reach the sandbox.

moto accepts bucket policies but evaluates them wrongly: conditions inside a Deny always match
(so a TLS-only policy blocks HTTPS too) and the Principal is ignored. Real AWS evaluates them
exactly. So while a sandbox is open, the kit

* switches moto's own bucket-policy check off, and
* evaluates every S3 request against the bucket's policy with :mod:`securepipe.policy`, using the
  request's real properties (scheme, headers, query), and refuses with ``403 AccessDenied`` where
  AWS would.

For requests signed with temporary credentials from STS (the kit's contractor sessions), it also
emulates what moto ignores (gaps ``sts-session-policy``, ``sts-expiry``, ``iam-conditions``): the
role's identity policies intersected with the session policy, conditions included, for S3 and KMS
calls; and the session's expiry. Presigned URLs past their ``X-Amz-Expires`` are refused
(gap ``s3-presigned-expiry``). The sandbox clock can be moved (:func:`securepipe.clock.move`) so
lessons and
tests can show an expired session being refused.

Requests are authorised by the IAM action AWS checks, which is not always the operation's
name under its signing service: S3 Control requests (signed for ``s3``) as
``s3:GetAccountPublicAccessBlock`` and the like, never as object reads; CloudWatch (signed as
``monitoring``) as ``cloudwatch:<Operation>``.

Every refusal says in its message that it is an emulation, and is recorded in
:data:`REFUSALS` for lessons and tests. This module is sandbox-only: on a real account AWS itself
does this work, and none of the kit's other code depends on it.

It hooks in at two places, covering every client, including one an attacker builds with stolen
keys: in-process, inside moto's stubber, just before moto carries a request out (botocore and
the ``requests`` library alike); in server mode, a WSGI middleware in front of moto's app.

It fails closed. Before anything else, every request is attributed to a principal of an open
sandbox by its SigV4 signature, recomputed with botocore's signer against the secret moto's IAM
or STS holds (:mod:`securepipe.sandbox.signatures`; gap ``sigv4-signatures``); one that cannot be
attributed is refused with AccessDenied. Each request is then read the way moto will act on it
(:mod:`securepipe.sandbox.requests`: moto's dispatch order, moto's copy-source parse, the key a
multipart upload id belongs to, the KMS key a ciphertext names; gap ``s3-request-reading``).
Where the emulation and moto could read one request two ways (a query parameter given twice,
two subresources, a parameter the operation does not take, a percent-encoded copy-source
separator, a Host header naming another host than the URL, a body on a GET or DELETE, a
browser-form POST upload), it refuses the request rather than guess which one moto acts on. A
request whose reading fails in any other way is refused too, never answered with a 500.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

from securepipe import clock
from securepipe.errors import InvalidParameterError
from securepipe.policy import Caller, Decision, Policy, Request, evaluate
from securepipe.sandbox.motostate import (
    aware_utc,
    bucket_policy_of,
    credentials_of,
    local_tag,
    multipart_key_of,
    object_lock_of,
    role_policies,
)
from securepipe.sandbox.requests import (
    S3Call,
    ServiceCall,
    access_key_of,
    decode_aws_chunked,
    describe_json_or_query_request,
    describe_s3_request,
    describe_s3control_request,
    headers_get,
    parse_lock_date,
)
from securepipe.sandbox.signatures import Signature, Signer, Unverified, verify


@dataclass(frozen=True)
class Refusal:
    """A request the sandbox refused on AWS's behalf."""

    service: str
    action: str
    resource: str
    principal: str | None
    decision: Decision
    code: str = "AccessDenied"
    reason: str = ""
    when: dt.datetime = field(default_factory=lambda: clock.now())

    @property
    def message(self) -> str:
        who = self.principal or "anonymous"
        if self.code == "ExpiredToken":
            text = f"The security token of {who} has expired ({self.reason})"
        elif self.reason:
            text = f"{self.reason} (request by {who} for {self.action} on {self.resource})"
        else:
            kind = {"ExplicitDeny": "with an explicit deny in",
                    "ImplicitDeny": "because no policy allows it:"}[self.decision.effect]
            where = self.decision.statement or "identity and session policies"
            text = (f"User: {who} is not authorized to perform: {self.action} on resource: "
                    f"{self.resource} {kind} {where}")
        return f"{text} [securepipe sandbox: {EMULATION}]"


EMULATION = "emulated AWS enforcement"


#: Every refusal made while sandboxes were open, oldest first (bounded).
REFUSALS: list[Refusal] = []


_MAX_REFUSALS = 10_000


#: Sandbox accounts open in this process, with their region (maintained by the sandbox).
ACCOUNTS: dict[str, str] = {}


#: Credentials the sandbox holds outside moto's IAM and STS (each sandbox's bootstrap identity,
#: which creates its admin user), by access key id.
BOOTSTRAP: dict[str, Signer] = {}


def credentials_for(access_key: str) -> Signer | None:
    """The credentials the sandbox holds for an access key id, if any."""
    found = BOOTSTRAP.get(access_key)
    if found is not None:
        return found
    return credentials_of(access_key, ACCOUNTS.get)


#: Signing names that differ from an endpoint's first host label.
_HOST_SERVICE = {"email": "ses"}
_HOST_REGION = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com$")


#: DynamoDB's account-based endpoint, ``<account-id>.ddb.<region>.amazonaws.com``, which
#: botocore builds for calls naming a table ARN (ListTagsOfResource, for one):
#: https://docs.aws.amazon.com/sdkref/latest/guide/feature-account-endpoints.html
_DDB_ACCOUNT_HOST = re.compile(r"^(\d{12})\.ddb\.")


def _service_of_host(host: str) -> str | None:
    """The service an in-process URL reaches (as moto's stubber dispatches by URL)."""
    if not host.endswith(".amazonaws.com"):
        return None  # server mode: moto dispatches on the credential scope's service
    if host.startswith(("s3.", "s3-")) or ".s3." in host or ".s3-" in host:
        return "s3"
    if _DDB_ACCOUNT_HOST.match(host):
        return "dynamodb"
    label = host.split(".", 1)[0]
    return _HOST_SERVICE.get(label, label)


class Enforcer:
    """Evaluates sandbox requests the way AWS would, with policies read from moto's state.

    Fails closed: a request is decided only once its signature is verified
    (:mod:`securepipe.sandbox.signatures`) and it is read unambiguously; anything else is
    refused with AccessDenied.
    """

    def __init__(self, policy_source: Callable[[str], Policy | None] | None = None,
                 credentials: Callable[[str], Signer | None] | None = None) -> None:
        self._policy_source = policy_source or bucket_policy_of
        self._credentials = credentials or credentials_for
        #: the reading of the last request checked (``None`` if it could not be read)
        self.last_reading: S3Call | ServiceCall | None = None

    def check(
        self, method: str, url: str, headers: Mapping[str, Any],
        body: bytes | str | None = None, signed_url: str | None = None,
    ) -> Refusal | None:
        """Return a :class:`Refusal` if AWS would refuse this request, else ``None``.

        ``url`` is the URL moto acts on, ``signed_url`` the URL the client signed, when they
        differ (in-process, moto maps other AWS domains onto ``.amazonaws.com``).
        """
        try:
            refusal = self._check(method, url, headers, body, signed_url or url)
        except Exception as exc:  # a reading that fails is a refusal, never a 500
            refusal = Refusal("s3", "unknown", "*", None, Decision("ExplicitDeny",
                              "securepipe:unreadable-request"),
                              reason=f"the emulation could not read this request "
                                     f"({type(exc).__name__}), so it refuses it")
        if refusal is not None:
            REFUSALS.append(refusal)
            del REFUSALS[:-_MAX_REFUSALS]
        return refusal

    def _check(self, method: str, url: str, headers: Mapping[str, Any],
               body: bytes | str | None, signed_url: str) -> Refusal | None:
        self.last_reading = None
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = dict(pairs)
        host = (parts.hostname or "").lower()
        guess = _service_of_host(host) or (
            "kms" if headers_get(headers, "x-amz-target") is not None else
            "sts" if "x-www-form-urlencoded" in str(headers_get(headers, "content-type", ""))
            else "s3")
        try:
            signature = verify(method, signed_url, headers, body, self._credentials)
        except Unverified as exc:
            return _unattributed(str(exc), access_key_of(
                str(headers_get(headers, "authorization", "") or ""), query), service=guess)
        signer = signature.signer
        dispatched = _service_of_host(host) or signature.service
        if dispatched != signature.service:
            return _unattributed(f"signed for {signature.service!r} but sent to "
                                 f"{dispatched!r}", signer.access_key, signer.arn, guess)
        account_host = _DDB_ACCOUNT_HOST.match(host)
        if account_host is not None and account_host.group(1) != signer.account:
            # moto would answer from the signer's own account; AWS routes by the host's
            return _unattributed("sent to another account's endpoint", signer.access_key,
                                 signer.arn, guess)
        allowed_regions = {signer.region}
        if signature.service in ("iam", "sts"):
            allowed_regions.add("us-east-1")
        host_region = _HOST_REGION.search(host)
        if signature.region not in allowed_regions or (
                host_region is not None and host_region.group(1) != signature.region):
            return _unattributed(f"credential scope region {signature.region!r} is not this "
                                 f"sandbox's region", signer.access_key, signer.arn, guess)
        routed = headers_get(headers, "x-moto-account-id")
        if routed is not None and (signer.access_key not in BOOTSTRAP
                                   or str(routed) != signer.account):
            return _unattributed("a request routed to an account by header", signer.access_key,
                                 signer.arn, guess)
        call: S3Call | ServiceCall | None
        if signature.service == "s3":
            call = (describe_s3control_request(method, url, headers, signer.account)
                    or describe_s3_request(method, url, headers))
        else:
            call = describe_json_or_query_request(url, headers, body, signature.service,
                                                  signer.account, signature.region)
        if call is None:
            return _unattributed("the emulation cannot read this request", signer.access_key,
                                 signer.arn, signature.service)
        call = replace(call, access_key=signer.access_key,
                       context={**call.context, **_signature_context(signature)})
        self.last_reading = call
        session = signer.session
        principal = signer.arn
        refusal = None
        if signature.expires_s is not None:
            refusal = _presigned_expired(call, principal, signature)
        if refusal is None and session is not None and clock.now() >= aware_utc(session.expiration):
            refusal = Refusal(call.service, call.action, call.resource, principal,
                              Decision("ExplicitDeny"), code="ExpiredToken",
                              reason=f"expired at {aware_utc(session.expiration):%H:%M:%S} UTC, "
                                     f"sandbox clock {clock.now():%H:%M:%S} UTC")
        if refusal is None and isinstance(call, S3Call):
            reason = call.ambiguous
            length = str(headers_get(headers, "content-length", "") or "0")
            if reason is None and method.upper() in ("GET", "HEAD", "DELETE") and (
                    body or not length.isdigit() or int(length) > 0
                    or headers_get(headers, "transfer-encoding") is not None):
                reason = "a read or delete that carries a body"
            if reason is None and call.upload_id is not None:
                owner = multipart_key_of(call.bucket, call.upload_id)
                if owner is not None and owner != call.key:
                    reason = "the upload id belongs to another key than the one in the URL"
            if reason is not None:
                refusal = _own_refusal(call, principal, "ambiguous-request",
                                       f"the emulation cannot be sure how this request is "
                                       f"read ({reason}), so it refuses it")
        if refusal is None and isinstance(call, ServiceCall) and call.ambiguous:
            refusal = _own_refusal(call, principal, "ambiguous-request",
                                   f"the emulation cannot be sure how this request is "
                                   f"read ({call.ambiguous}), so it refuses it")
        if refusal is None and isinstance(call, S3Call) and call.action == "s3:PutBucketPolicy":
            refusal = _unreadable_policy(call, principal, body)
        if refusal is None and isinstance(call, S3Call) and call.action == "s3:PutObjectRetention":
            refusal = _retention_change(call, principal, body,
                                        query.get("versionId") or None)
        if refusal is None:
            calls = _calls_to_check(call, body, headers)
            if calls is None:
                refusal = _own_refusal(call, principal, "unreadable-request",
                                       "the emulation cannot tell which keys (or items) this "
                                       "request names, so it refuses it rather than let it "
                                       "through unchecked")
            for each in calls or ():
                refusal = self._evaluate(each, signer)
                if refusal is not None:
                    break
        return refusal

    def _evaluate(self, call: S3Call | ServiceCall, signer: Signer) -> Refusal | None:
        if call.action in _ALWAYS_ALLOWED:
            return None
        principal = signer.arn
        session = signer.session
        if signer.access_key in BOOTSTRAP:
            # the account's own bootstrap identity, which only creates the admin user
            return None if call.service == "iam" else Refusal(
                call.service, call.action, call.resource, principal, Decision("ImplicitDeny"))
        bucket_policy = self._policy_source(call.bucket) if isinstance(call, S3Call) else None
        resource_policies = [bucket_policy] if bucket_policy is not None else []
        context = {**call.context,
                   "aws:PrincipalArn": session.role_arn if session is not None else principal,
                   "aws:PrincipalAccount": signer.account}
        if session is None:
            context["aws:username"] = principal.rsplit("/", 1)[-1]
        identity = session_policies = None
        if session is not None:
            identity = role_policies(session.role_arn)
            if session.policy:
                session_policies = [Policy.from_document("session-policy", session.policy)]
        caller = Caller(principal, signer.account,
                        session.role_arn if session is not None else None)

        def decide(action: str, resource: str, policies: list[Policy]) -> Decision:
            return evaluate(Request(action, resource, principal, context, caller=caller),
                            identity=identity, session=session_policies, resource=policies)

        for action in (call.action, *(call.also if isinstance(call, S3Call) else ())):
            decision = decide(action, call.resource, resource_policies)
            if not decision.allowed:
                return Refusal(call.service, action, call.resource, principal, decision)
        if (isinstance(call, S3Call) and call.bypass_governance and call.key is not None
                and call.action in _GOVERNANCE_BYPASSABLE):
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html
            action = "s3:BypassGovernanceRetention"
            decision = decide(action, call.resource, resource_policies)
            if not decision.allowed:
                return Refusal(call.service, action, call.resource, principal, decision)
        if isinstance(call, S3Call) and call.copy_source is not None:
            # A copy is also a read of its source: AWS authorises s3:GetObject there too.
            bucket, key, version = call.copy_source
            action = "s3:GetObjectVersion" if version else "s3:GetObject"
            source = f"arn:aws:s3:::{bucket}/{key}"
            source_policy = self._policy_source(bucket)
            decision = decide(action, source, [source_policy] if source_policy else [])
            if not decision.allowed:
                return Refusal(call.service, action, source, principal, decision)
        return None


def _unattributed(reason: str, access_key: str | None, principal: str | None = None,
                  service: str = "s3") -> Refusal:
    """A request the emulation cannot attribute to a known principal with a valid signature."""
    return Refusal(service, "unknown", "*", principal or access_key,
                   Decision("ExplicitDeny", "securepipe:unattributed-request"),
                   reason=f"the sandbox cannot attribute this request to a known principal with "
                          f"a valid signature ({reason}), so it refuses it")


def _signature_context(signature: Signature) -> dict[str, Any]:
    """The S3 signature condition keys, as AWS sets them on every S3 request.

    https://docs.aws.amazon.com/AmazonS3/latest/API/bucket-policy-s3-sigv4-conditions.html
    """
    if signature.service != "s3":
        return {}
    # botocore signs with the real clock. A header signature is made as the request is sent, so
    # its age is measured by the real clock too (a sandbox clock moved years ahead must not age
    # it); a presigned URL is used later, so its age is measured by the sandbox clock, which
    # lessons move to show an old link refused (as its expiry is).
    now = clock.now() if signature.auth_type == "REST-QUERY-STRING" else dt.datetime.now(dt.UTC)
    age = (now - signature.signed_at).total_seconds() * 1000
    return {"s3:signatureAge": str(max(0, int(age))), "s3:authType": signature.auth_type,
            "s3:signatureversion": "AWS4-HMAC-SHA256"}


_ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})


#: Requests whose ``x-amz-bypass-governance-retention`` header AWS authorises separately.
_GOVERNANCE_BYPASSABLE = frozenset({"s3:DeleteObject", "s3:DeleteObjectVersion",
                                    "s3:PutObjectRetention"})


def _retention_change(call: S3Call, principal: str | None, body: bytes | str | None,
                      version_id: str | None) -> Refusal | None:
    """What Object Lock allows a PutObjectRetention to change (moto allows any change).

    COMPLIANCE retention can be extended, never shortened, removed or switched to GOVERNANCE,
    by anyone. Shortening or removing GOVERNANCE retention needs the
    ``x-amz-bypass-governance-retention`` header (and so ``s3:BypassGovernanceRetention``,
    checked with the rest of the request).
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html#object-lock-retention-modes
    """
    current = object_lock_of(call.bucket, call.key or "", version_id)
    if current is None:
        return None  # no lock in force: any retention may be set
    mode, until = current
    new = _retention_body(body)
    if new is None:
        return _own_refusal(call, principal, "ambiguous-request",
                            "the emulation cannot read the new retention, so it refuses it")
    new_mode, new_until = new
    weaker = new_until is None or new_until < until
    if mode == "COMPLIANCE" and (weaker or new_mode != "COMPLIANCE"):
        reason = "COMPLIANCE retention cannot be shortened, removed or relaxed, by anyone"
    elif mode == "GOVERNANCE" and weaker and not call.bypass_governance:
        reason = ("shortening or removing GOVERNANCE retention needs "
                  "x-amz-bypass-governance-retention (and s3:BypassGovernanceRetention)")
    else:
        return None
    return _own_refusal(call, principal, "object-lock", reason)


def _unreadable_policy(call: S3Call, principal: str | None,
                       body: bytes | str | None) -> Refusal | None:
    """A bucket policy the evaluator cannot read is refused when it is put, so no request to
    the bucket later meets a policy the emulation cannot decide on."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        Policy.from_document("bucket-policy", text or "")
    except InvalidParameterError as exc:
        return _own_refusal(call, principal, "unreadable-policy",
                            f"the emulation cannot evaluate this bucket policy ({exc}), so it "
                            f"refuses to store it")
    return None


def _own_refusal(call: S3Call | ServiceCall, principal: str | None, rule: str,
                 reason: str) -> Refusal:
    """A refusal decided by the emulation's own rule (not by a policy statement)."""
    return Refusal(call.service, call.action, call.resource, principal,
                   Decision("ExplicitDeny", f"securepipe:{rule}"), reason=reason)


def _retention_body(body: bytes | str | None) -> tuple[str | None, dt.datetime | None] | None:
    """``(Mode, RetainUntilDate)`` of a PutObjectRetention body; None if it cannot be read."""
    data = body.encode() if isinstance(body, str) else body
    try:
        root = ElementTree.fromstring(data or b"")
    except ElementTree.ParseError:
        return None
    if local_tag(root.tag) != "Retention":
        return None
    fields: dict[str, list[str]] = {}
    for child in root:
        fields.setdefault(local_tag(child.tag), []).append(child.text or "")
    if any(len(v) > 1 for v in fields.values()):
        return None
    mode = fields.get("Mode", [None])[0]
    raw_until = fields.get("RetainUntilDate", [None])[0]
    until = parse_lock_date(raw_until)
    if raw_until and until is None:
        return None
    return mode, until


def _calls_to_check(call: S3Call | ServiceCall, body: bytes | str | None,
                    headers: Mapping[str, Any]) -> list[S3Call | ServiceCall] | None:
    """The requests to authorise for ``call``: usually just ``call``.

    * A DynamoDB TransactWriteItems becomes its actions, each authorised as AWS does
      (:func:`securepipe.sandbox.requests.dynamodb_transact_write_parts`); the whole request
      is refused if any one is.

    * An object GET with a subresource (``?retention``, say) is also checked as a GetObject:
      moto answers some of them with the object itself.
    * DeleteObjects (``POST /bucket?delete``) becomes the per-key deletes AWS authorises
      (``s3:DeleteObject``, or ``s3:DeleteObjectVersion`` with a version id, on every key in
      the body, not on the bucket; AWS reports each refused key in the response's ``Errors``).
      The emulation refuses the whole request if any key would be refused: stricter, never
      looser. ``None`` when the body cannot be read with certainty (not the XML moto would act
      on, an aws-chunked body that does not decode, an object without exactly one key): the
      caller then refuses the request.
      https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
    """
    if isinstance(call, ServiceCall) and call.action == "dynamodb:TransactWriteItems":
        # authorised per action, each with its own condition keys; none to read: refused
        return list(call.parts) or None
    if (isinstance(call, S3Call) and call.key is not None and call.action.startswith("s3:GetObject")
            and call.action not in ("s3:GetObject", "s3:GetObjectVersion")):
        return [call, replace(call, action="s3:GetObject")]
    if not (isinstance(call, S3Call) and call.action == "s3:DeleteObject" and call.key is None):
        return [call]
    data = body.encode() if isinstance(body, str) else body
    if not data:
        return None
    streaming = str(headers_get(headers, "x-amz-content-sha256", "")).startswith("STREAMING-")
    if streaming or "aws-chunked" in str(headers_get(headers, "content-encoding", "")):
        data = decode_aws_chunked(data)
        if data is None:
            return None
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return None
    if local_tag(root.tag) != "Delete":
        return None
    calls: list[S3Call | ServiceCall] = []
    for obj in root:
        if local_tag(obj.tag) != "Object":
            continue
        keys = [c.text or "" for c in obj if local_tag(c.tag) == "Key"]
        versions = [c.text or "" for c in obj if local_tag(c.tag) == "VersionId"]
        if len(keys) != 1 or len(versions) > 1:
            return None
        action = "s3:DeleteObjectVersion" if versions and versions[0] else "s3:DeleteObject"
        calls.append(replace(call, action=action, key=keys[0]))
    return calls or None


def _presigned_expired(call: S3Call | ServiceCall, principal: str | None,
                       signature: Signature) -> Refusal | None:
    """A presigned URL is valid from ``X-Amz-Date`` for ``X-Amz-Expires`` seconds."""
    assert signature.expires_s is not None
    deadline = signature.signed_at + dt.timedelta(seconds=signature.expires_s)
    if clock.now() <= deadline:
        return None
    return Refusal(call.service, call.action, call.resource, principal, Decision("ExplicitDeny"),
                   reason=f"Request has expired: presigned URL valid until {deadline:%H:%M:%S} UTC")
