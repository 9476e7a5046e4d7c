"""CloudTrail-shaped events for every S3 and KMS call made in-process (sandbox stand-in).

On AWS, CloudTrail writes a record for each API call: management events (bucket configuration,
every KMS call) by default, and S3 object-level *data events* (GetObject, PutObject, ...) only
for trails with data-event selectors (see :mod:`securepipe.audit.monitoring`). The exfiltration
detector (:mod:`securepipe.audit.detector`) reads those GetObject records.

moto stores trails and their selectors but records no events at all, and ``lookup_events`` is
not implemented (gap ``cloudtrail-events`` in :mod:`securepipe.sandbox.gaps`). So in the sandbox,
:class:`CloudTrailRecorder` builds the records itself, from the botocore calls it sees, in the
shape CloudTrail uses (``eventVersion``, ``userIdentity``, ``eventSource``, ``eventName``,
``requestParameters``, ``additionalEventData.bytesTransferredOut``, ``errorCode`` for refused
calls, ...). It is an emulation for lessons and tests: on a real account, read CloudTrail.

How it hooks in: three botocore handlers, registered globally through
``botocore.handlers.BUILTIN_HANDLERS`` by :meth:`CloudTrailRecorder.install` (so they reach every
session created afterwards, including one an attacker builds with stolen keys) and inert while
no recorder is installed; :meth:`CloudTrailRecorder.attach` registers them on one existing
session instead. ``before-parameter-build`` keeps the request parameters (never bodies or
blobs), ``request-created`` (after signing) the access key id and user agent, and ``after-call``
builds the event; ``after-call`` also fires for error responses, so refused calls (moto's and
the kit's emulated refusals alike) are recorded with ``errorCode``. The caller's identity is
resolved from the access key as :mod:`securepipe.sandbox.emulation` does; ``eventTime`` is the
sandbox
clock (:func:`securepipe.clock.now`), so a moved clock shows. moto does not keep an STS
session's ``SourceIdentity``, so the recorder remembers it from the AssumeRole calls it sees.

Calls made by another process (a tool pointed at a server-mode sandbox) are not seen.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
from botocore import handlers as _bc_handlers

from securepipe import clock
from securepipe.errors import InvalidParameterError
from securepipe.sandbox.motostate import assumed_role_of, user_arn_of
from securepipe.sandbox.requests import access_key_of, headers_get, kms_key_arn_of

EVENT_VERSION = "1.09"
SERVICES = frozenset({"s3", "kms"})
#: S3 operations CloudTrail logs as data events (object-level); the rest are management events.
S3_DATA_EVENTS = frozenset({
    "GetObject", "HeadObject", "PutObject", "DeleteObject", "DeleteObjects", "CopyObject",
    "GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging", "GetObjectAcl",
    "PutObjectAcl", "GetObjectRetention", "PutObjectRetention", "GetObjectLegalHold",
    "PutObjectLegalHold", "RestoreObject", "ListObjects", "ListObjectsV2", "ListObjectVersions",
    "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
    "AbortMultipartUpload", "ListParts", "SelectObjectContent", "GetObjectAttributes",
})
_KMS_READ_ONLY = frozenset({"Decrypt", "Encrypt", "GenerateDataKey",
                            "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
                            "GenerateDataKeyPairWithoutPlaintext", "GenerateRandom",
                            "ReEncrypt", "Sign", "Verify", "GenerateMac", "VerifyMac"})
#: Request parameters never copied into an event (payloads, key material, customer keys).
_NEVER = frozenset({"Body", "CiphertextBlob", "Plaintext", "SSECustomerKey", "SSECustomerKeyMD5",
                    "CopySourceSSECustomerKey", "Message", "PublicKey", "Signature",
                    "SessionToken", "SecretAccessKey", "Policy", "ContentMD5",
                    "ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256",
                    "ChecksumCRC64NVME"})
_S3_NAMES = {"Bucket": "bucketName", "Key": "key", "VersionId": "versionId",
             "Prefix": "prefix", "Delimiter": "delimiter", "MaxKeys": "max-keys",
             "Range": "Range", "ContinuationToken": "continuation-token"}

_CTX = "securepipe.sandbox.cloudtrail"
_lock = threading.Lock()
_installed: list[CloudTrailRecorder] = []
_handlers_registered = False
#: Access key id -> what the AssumeRole call said (SourceIdentity, time), since moto keeps
#: neither; learned from the AssumeRole calls a recorder sees.
_sessions: collections.OrderedDict[str, dict[str, str]] = collections.OrderedDict()
_MAX_SESSIONS = 10_000
_recorder_ids = itertools.count(1)


class CloudTrailRecorder:
    """Collects CloudTrail-shaped event dicts for the S3/KMS calls it sees.

    Use ``with CloudTrailRecorder() as rec:`` (installs globally for sessions created inside
    the block) or ``rec.attach(session)`` for one existing session.

    :param services: which services to record (``s3``, ``kms``).
    :param max_events: keep at most this many events (oldest dropped, counted in ``dropped``).
    :param listeners: callables invoked with each new event (e.g. a streaming detector).
    :param source_ip: ``sourceIPAddress`` for calls made in-process (there is no network peer).
    """

    def __init__(self, *, services: frozenset[str] | set[str] = SERVICES,
                 max_events: int = 1_000_000,
                 listeners: tuple[Callable[[dict[str, Any]], None], ...] = (),
                 source_ip: str = "127.0.0.1") -> None:
        unknown = set(services) - {"s3", "kms"}
        if unknown:
            raise InvalidParameterError(f"cannot record services {sorted(unknown)}")
        if not isinstance(max_events, int) or max_events < 1:
            raise InvalidParameterError("max_events must be a positive int")
        self.id = next(_recorder_ids)
        self.services = frozenset(services)
        self.source_ip = source_ip
        self.listeners = tuple(listeners)
        self.dropped = 0
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_events)
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------
    def install(self) -> CloudTrailRecorder:
        """Record calls from every session created from now on (until :meth:`uninstall`)."""
        _register_global_handlers()
        with _lock:
            if self not in _installed:
                _installed.append(self)
        return self

    def uninstall(self) -> None:
        with _lock:
            if self in _installed:
                _installed.remove(self)

    def attach(self, session: boto3.Session, *, source_ip: str | None = None) -> None:
        """Record the calls of clients made from ``session`` from now on (clients created
        before this call are not hooked). Idempotent per recorder and session."""
        events = session.events
        events.register("before-parameter-build", _stash_params,
                        unique_id=f"{_CTX}.params.{self.id}")
        events.register_last("request-created", _stash_request,
                             unique_id=f"{_CTX}.request.{self.id}")

        def _after(**kwargs: Any) -> None:
            if source_ip is not None and kwargs.get("context") is not None:
                kwargs["context"].setdefault(f"{_CTX}.ip", source_ip)
            _dispatch([self], **kwargs)

        events.register("after-call", _after, unique_id=f"{_CTX}.after.{self.id}")

    def __enter__(self) -> CloudTrailRecorder:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- reading -------------------------------------------------------------------------------
    @property
    def events(self) -> list[dict[str, Any]]:
        """Every recorded event, oldest first (copies of the list, not of the dicts)."""
        with self._lock:
            return list(self._events)

    def select(self, event_name: str | None = None, *, source: str | None = None,
               data_only: bool = False) -> list[dict[str, Any]]:
        """Events filtered by name (``GetObject``), source (``s3``/``kms``) and category."""
        out = []
        for event in self.events:
            if event_name is not None and event["eventName"] != event_name:
                continue
            if source is not None and event["eventSource"] != f"{source}.amazonaws.com":
                continue
            if data_only and event["managementEvent"]:
                continue
            out.append(event)
        return out

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self.dropped = 0

    def to_jsonl(self) -> str:
        """The events as JSON lines (the shape of a CloudTrail log file's ``Records``)."""
        return "".join(json.dumps(e, sort_keys=True, ensure_ascii=True) + "\n"
                       for e in self.events)

    def _record(self, event: dict[str, Any]) -> None:
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self.dropped += 1
            self._events.append(event)
        for listener in self.listeners:
            listener(event)


# -- botocore handlers ------------------------------------------------------------------------


def _register_global_handlers() -> None:
    global _handlers_registered
    with _lock:
        if _handlers_registered:
            return
        _bc_handlers.BUILTIN_HANDLERS.extend([
            ("before-parameter-build", _global_stash_params),
            ("request-created", _global_stash_request, _bc_handlers.REGISTER_LAST),
            ("after-call", _global_after_call),
        ])
        _handlers_registered = True


def _global_stash_params(**kwargs: Any) -> None:
    if _installed:
        _stash_params(**kwargs)


def _global_stash_request(**kwargs: Any) -> None:
    if _installed:
        _stash_request(**kwargs)


def _global_after_call(**kwargs: Any) -> None:
    if _installed:
        _dispatch(list(_installed), **kwargs)


def _service(model: Any) -> str | None:
    try:
        return str(model.service_model.service_name)
    except AttributeError:
        return None


def _stash_params(params: Mapping[str, Any] | None = None, model: Any = None,
                  context: dict[str, Any] | None = None, **_: Any) -> None:
    """Keep the call's parameters (minus payloads and secrets) in the request context."""
    if context is None or params is None or _service(model) not in ("s3", "kms", "sts"):
        return
    kept: dict[str, Any] = {}
    for name, value in params.items():
        if name in _NEVER:
            continue
        if isinstance(value, str | int | float | bool) or (
                name == "EncryptionContext" and isinstance(value, Mapping)):
            kept[name] = dict(value) if isinstance(value, Mapping) else value
    context[f"{_CTX}.params"] = kept
    body = params.get("Body")
    context[f"{_CTX}.bytes_in"] = _length(body)


def _length(body: Any) -> int:
    if body is None:
        return 0
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if isinstance(body, str):
        return len(body.encode("utf-8"))
    try:
        pos = body.tell()
        end = body.seek(0, 2)
        body.seek(pos)
        return int(end - pos)
    except (AttributeError, OSError, ValueError):
        return 0


def _stash_request(request: Any = None, **_: Any) -> None:
    """After signing: remember the access key id, user agent and host of the request."""
    context = getattr(request, "context", None)
    if context is None:
        return
    auth = headers_get(request.headers, "authorization", "") or ""
    query = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
    context[f"{_CTX}.access_key"] = access_key_of(auth, query)
    context[f"{_CTX}.user_agent"] = headers_get(request.headers, "user-agent", "")
    context[f"{_CTX}.host"] = urlsplit(request.url).hostname or ""


def _dispatch(recorders: list[CloudTrailRecorder], http_response: Any = None,
              parsed: Mapping[str, Any] | None = None, model: Any = None,
              context: dict[str, Any] | None = None, **_: Any) -> None:
    service = _service(model)
    if context is None or parsed is None or service is None:
        return
    if service == "sts":
        _learn_source_identity(model.name, context, parsed)
        return
    targets = [r for r in recorders if service in r.services]
    done: set[int] = context.setdefault(f"{_CTX}.done", set())
    targets = [r for r in targets if r.id not in done]
    if not targets:
        return
    status = int(getattr(http_response, "status_code", 0) or
                 parsed.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    event = build_event(service, model.name, context, parsed, status,
                        source_ip=context.get(f"{_CTX}.ip") or targets[0].source_ip)
    for recorder in targets:
        done.add(recorder.id)
        recorder._record(event if len(targets) == 1 else json.loads(json.dumps(event)))


def _learn_source_identity(operation: str, context: Mapping[str, Any],
                           parsed: Mapping[str, Any]) -> None:
    if operation not in ("AssumeRole", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"):
        return
    identity = context.get(f"{_CTX}.params", {}).get("SourceIdentity")
    key = parsed.get("Credentials", {}).get("AccessKeyId")
    if not isinstance(key, str):
        return
    info = {"creationDate": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")}
    if isinstance(identity, str):
        info["sourceIdentity"] = identity
    with _lock:
        _sessions[key] = info
        while len(_sessions) > _MAX_SESSIONS:
            _sessions.popitem(last=False)


# -- event construction -----------------------------------------------------------------------


def build_event(service: str, operation: str, context: Mapping[str, Any],
                parsed: Mapping[str, Any], status: int, *,
                source_ip: str | None = None) -> dict[str, Any]:
    """One CloudTrail record for a call (see the CloudTrail record contents reference:
    https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html
    and, for S3, https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-understanding-s3-entries.html).
    """
    params: Mapping[str, Any] = context.get(f"{_CTX}.params", {})
    access_key = context.get(f"{_CTX}.access_key")
    identity = user_identity(access_key)
    meta = parsed.get("ResponseMetadata", {})
    error = parsed.get("Error") if status >= 300 else None
    region = str(context.get("client_region") or "")
    if service == "s3":
        bucket = params.get("Bucket")
        key = params.get("Key")
        data = operation in S3_DATA_EVENTS
        request_parameters: dict[str, Any] = {
            _S3_NAMES.get(k, k[:1].lower() + k[1:]): v for k, v in params.items()}
        request_parameters["Host"] = context.get(f"{_CTX}.host", "")
        owner = _bucket_owner(bucket) or identity.get("accountId")
        resources: list[dict[str, Any]] = []
        if isinstance(bucket, str) and isinstance(key, str):
            resources.append({"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"})
        if isinstance(bucket, str):
            resources.append({"accountId": owner, "type": "AWS::S3::Bucket",
                              "ARN": f"arn:aws:s3:::{bucket}"})
        out_bytes = 0
        if error is None and operation == "GetObject":
            out_bytes = int(parsed.get("ContentLength") or 0)
        additional: dict[str, Any] | None = {
            "SignatureVersion": "SigV4", "AuthenticationMethod": "AuthHeader",
            "bytesTransferredIn": int(context.get(f"{_CTX}.bytes_in") or 0)
            if error is None else 0,
            "bytesTransferredOut": out_bytes,
        }
        response: dict[str, Any] | None = None
        if error is None and parsed.get("VersionId") and operation != "GetObject":
            response = {"x-amz-version-id": parsed.get("VersionId")}
        read_only = operation.startswith(("Get", "Head", "List", "Select"))
        recipient = owner
    else:
        data = False
        request_parameters = {k[:1].lower() + k[1:]: v for k, v in params.items()}
        key_arn = parsed.get("KeyId") if error is None else None
        key_arn = key_arn or kms_key_arn_of(params.get("KeyId"))
        resources = ([{"accountId": identity.get("accountId"), "type": "AWS::KMS::Key",
                       "ARN": key_arn}] if key_arn else [])
        additional = None
        response = None
        read_only = operation in _KMS_READ_ONLY or operation.startswith(
            ("Describe", "List", "Get"))
        recipient = key_arn.split(":")[4] if key_arn else identity.get("accountId")
    event: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": identity,
        "eventTime": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": f"{service}.amazonaws.com",
        "eventName": operation,
        "awsRegion": region,
        "sourceIPAddress": source_ip or "127.0.0.1",
        "userAgent": str(context.get(f"{_CTX}.user_agent") or ""),
        "requestParameters": request_parameters,
        "responseElements": response,
        "requestID": str(meta.get("RequestId") or ""),
        "eventID": str(uuid.uuid4()),
        "readOnly": read_only,
        "resources": resources,
        "eventType": "AwsApiCall",
        "managementEvent": not data,
        "recipientAccountId": recipient,
        "eventCategory": "Data" if data else "Management",
    }
    if additional is not None:
        event["additionalEventData"] = additional
    if error is not None:
        event["errorCode"] = str(error.get("Code") or f"HTTP{status}")
        event["errorMessage"] = str(error.get("Message") or "")
    return event


def user_identity(access_key: str | None) -> dict[str, Any]:
    """CloudTrail's ``userIdentity`` for the sandbox identity that owns ``access_key``."""
    role = assumed_role_of(access_key)
    if role is not None:
        account = str(role.account_id)
        role_name = str(role.role_arn).rsplit("/", 1)[-1]
        principal_id = str(role.user_id)
        with _lock:
            seen = dict(_sessions.get(str(access_key), {}))
        attributes = {"mfaAuthenticated": "false"}
        if "creationDate" in seen:
            attributes["creationDate"] = seen["creationDate"]
        context: dict[str, Any] = {
            "sessionIssuer": {"type": "Role", "principalId": principal_id.split(":", 1)[0],
                              "arn": str(role.role_arn), "accountId": account,
                              "userName": role_name},
            "attributes": attributes,
        }
        if "sourceIdentity" in seen:
            context["sourceIdentity"] = seen["sourceIdentity"]
        return {"type": "AssumedRole", "principalId": principal_id, "arn": str(role.arn),
                "accountId": account, "accessKeyId": access_key, "sessionContext": context}
    arn = user_arn_of(access_key)
    if arn is not None:
        account = arn.split(":")[4]
        name = arn.rsplit("/", 1)[-1]
        return {"type": "IAMUser", "principalId": _user_id(account, name) or name, "arn": arn,
                "accountId": account, "accessKeyId": access_key, "userName": name}
    return {"type": "Unknown", "accessKeyId": access_key}


def _user_id(account: str, name: str) -> str | None:
    try:
        from moto.iam.models import iam_backends

        return str(iam_backends[account]["aws"].get_user(name).id)
    except Exception:
        return None


def _bucket_owner(bucket: Any) -> str | None:
    if not isinstance(bucket, str):
        return None
    try:
        from moto.s3.models import s3_backends

        owner = s3_backends.bucket_accounts.get(bucket)
    except Exception:
        return None
    return None if owner is None else str(owner[1] if isinstance(owner, tuple) else owner)


def principal_of(event: Mapping[str, Any]) -> str | None:
    """The principal an event is attributed to: ``userIdentity.arn`` (for an assumed role, the
    session ARN ``arn:aws:sts::<acct>:assumed-role/<role>/<session>``)."""
    identity = event.get("userIdentity")
    if not isinstance(identity, Mapping):
        return None
    arn = identity.get("arn")
    return arn if isinstance(arn, str) else None


def iter_get_object_events(events: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """The successful GetObject data events among ``events``."""
    for event in events:
        if event.get("eventName") == "GetObject" and "errorCode" not in event:
            yield event
