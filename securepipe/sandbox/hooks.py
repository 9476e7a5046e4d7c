"""Where the emulation hooks into moto: inside moto's stubber in-process, and as WSGI middleware
in front of moto's server. :func:`activate` and :func:`deactivate` are called by the sandbox.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from securepipe import clock
from securepipe.sandbox import kmskeys, latency, loader
from securepipe.sandbox.emulation import ACCOUNTS, BOOTSTRAP, Enforcer, Refusal
from securepipe.sandbox.motostate import aware_utc
from securepipe.sandbox.requests import S3Call, ServiceCall, headers_get
from securepipe.sandbox.signatures import Signer


def refusal_response(refusal: Refusal, json_protocol: bool) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the error AWS would send for this refusal."""
    status = 400 if refusal.code == "ExpiredToken" else 403
    if json_protocol:
        kind = "ExpiredTokenException" if refusal.code == "ExpiredToken" else (
            "AccessDeniedException")
        body = json.dumps({"__type": kind, "message": refusal.message}).encode()
        return 400, {"Content-Type": "application/x-amz-json-1.1"}, body
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{refusal.code}</Code><Message>{escape(refusal.message)}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    ).encode()
    if refusal.service not in ("s3",):
        # Query protocol (IAM, STS): the error document is wrapped in an ErrorResponse.
        xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{refusal.code}</Code>"
               f"<Message>{escape(refusal.message)}</Message></Error>"
               f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()
    return status, {"Content-Type": "text/xml" if refusal.service != "s3" else
                    "application/xml"}, xml


_lock = threading.Lock()


#: The largest body server mode reads to check a signature or a DeleteObjects list.
_MAX_READ_BODY = 16 << 20


_active = 0


_enforcer = Enforcer()


_saved_get_permission: Any = None


_saved_assume_role: Any = None


_saved_process_request: Any = None


#: DynamoDB applies a conditional write atomically (the condition is evaluated against the item
#: as the write finds it: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html),
#: and a read returns an item as it was before or after a write, never half-way. moto reads the
#: item, evaluates the condition and writes in separate steps, so two threads can both pass the
#: same condition; and it applies an UpdateItem's actions one by one to the stored item, so a
#: read running beside it can see some attributes set and others not (an erasure-journal entry
#: was read with its "prev" missing, and a concurrent erasure forked its chain). The sandbox
#: runs moto's DynamoDB item operations, reads included, one at a time (gap
#: ``dynamodb-conditional-write``), in-process and in server mode alike.
_DDB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items",
               "batch_write_item", "get_item", "query", "scan", "batch_get_item",
               "transact_get_items", "execute_statement")
_ddb_write_lock = threading.RLock()
_saved_ddb_writes: dict[str, Any] = {}


def last_reading() -> S3Call | ServiceCall | None:
    """How the in-process check point read the last request it checked (for tests)."""
    return _enforcer.last_reading


def _check_in_process(request: Any) -> tuple[int, dict[str, str], bytes] | None:
    """The in-process check point: every request moto's stubber is about to carry out.

    Whether it came from botocore or from the ``requests`` library (which moto intercepts
    with ``responses``: a presigned URL fetched in-process, say), it is checked on the URL moto
    itself acts on (moto maps other AWS domains, such as ``.amazonaws.com.cn``, to
    ``.amazonaws.com``), and a refusal is answered here, so moto never carries it out.
    """
    from moto.core.utils import get_equivalent_url_in_aws_domain

    url = get_equivalent_url_in_aws_domain(request.url)[0].geturl()
    body = request.body if isinstance(request.body, bytes | str) else None
    refusal = _enforcer.check(request.method, url, request.headers, body,
                              signed_url=request.url)
    if refusal is None:
        return None
    status, headers, payload = refusal_response(
        refusal, headers_get(request.headers, "x-amz-target") is not None)
    return status, headers, b"" if request.method.upper() == "HEAD" else payload


_saved_iam_utcnow: Any = None


def _sandbox_utcnow() -> dt.datetime:
    """moto's naive-UTC ``utcnow``, read from the sandbox clock."""
    return clock.now().astimezone(dt.UTC).replace(tzinfo=None)


def activate() -> None:
    """Turn emulated enforcement on (and moto's faulty bucket-policy check off).

    Also makes the sandbox's STS issue session expirations by the sandbox clock, so a clock
    moved years ahead still hands out sessions that last their ``DurationSeconds``.
    """
    global _active, _saved_get_permission, _saved_assume_role, _saved_process_request
    with _lock:
        _active += 1
        if _active > 1:
            return
        # Speed only, and first, so that moto's own sessions share it too: botocore's JSON
        # (service models, the list of services) parsed once, not per session.
        loader.share_loaders()
        kmskeys.defer_private_keys()  # speed only: no RSA key for a symmetric KMS key
        from moto.core.botocore_stubber import BotocoreStubber
        from moto.iam.access_control import PermissionResult
        from moto.s3.models import FakeBucket
        from moto.sts.models import STSBackend

        # One check point for in-process requests, inside moto's stubber: a botocore
        # before-send handler is not enough, since botocore runs every before-send handler
        # (moto's stubber included) and only then picks the first response, so a request
        # refused there was still carried out by moto.
        _saved_process_request = BotocoreStubber.process_request
        process = _saved_process_request

        def _checked(self: Any, request: Any) -> Any:
            latency.pause_for(request.method, request.url, request.headers)  # when switched on
            if _active:
                refused = _check_in_process(request)
                if refused is not None:
                    return refused
            return process(self, request)

        # moto's class is patched for the sandbox's lifetime (restored by deactivate).
        BotocoreStubber.process_request = _checked  # type: ignore[method-assign]
        _saved_get_permission = FakeBucket.get_permission

        def _neutral(self: Any, action: str, resource: str) -> Any:
            return PermissionResult.NEUTRAL

        # moto's class is patched for the sandbox's lifetime (restored by deactivate).
        FakeBucket.get_permission = _neutral  # type: ignore[method-assign]
        _saved_assume_role = STSBackend.assume_role
        original = _saved_assume_role

        def _assume_role_on_sandbox_clock(self: Any, *args: Any, **kwargs: Any) -> Any:
            role = original(self, *args, **kwargs)
            lasts = aware_utc(role.expiration) - dt.datetime.now(dt.UTC)  # the granted duration
            role.expiration = (clock.now() + lasts).replace(tzinfo=None)  # moto keeps naive UTC
            return role

        # moto's class is patched for the sandbox's lifetime (restored by deactivate).
        STSBackend.assume_role = _assume_role_on_sandbox_clock  # type: ignore[method-assign]
        # IAM dates (CreateDate, RoleLastUsed, AccessKeyLastUsed) by the sandbox clock too, so
        # an access review run with the clock years ahead sees a role used today as used today.
        import moto.iam.models as iam_models

        global _saved_iam_utcnow
        _saved_iam_utcnow = iam_models.utcnow
        iam_models.utcnow = _sandbox_utcnow
        _serialise_dynamodb_writes()


def _serialise_dynamodb_writes() -> None:
    """Run moto's DynamoDB item operations one at a time (see ``_DDB_WRITES``): its request
    handlers, so a response is also serialised before any other operation changes the item."""
    from moto.dynamodb.responses import DynamoHandler

    for name in _DDB_WRITES:
        original = getattr(DynamoHandler, name, None)
        if original is None or name in _saved_ddb_writes:
            continue
        _saved_ddb_writes[name] = original

        def _one_at_a_time(self: Any, *args: Any, _original: Any = original,
                           **kwargs: Any) -> Any:
            with _ddb_write_lock:
                return _original(self, *args, **kwargs)

        # moto's class is patched for the sandbox's lifetime (restored by deactivate).
        setattr(DynamoHandler, name, _one_at_a_time)


def register_account(account_id: str, region: str) -> None:
    """Serve requests signed by this sandbox account's principals (region: its region)."""
    with _lock:
        ACCOUNTS[account_id] = region


def forget_account(account_id: str) -> None:
    """Stop serving an account's principals (the sandbox closed), its bootstrap identity too."""
    with _lock:
        ACCOUNTS.pop(account_id, None)
        for key, signer in list(BOOTSTRAP.items()):
            if signer.account == account_id:
                del BOOTSTRAP[key]


def register_bootstrap(signer: Signer) -> None:
    """Let one bootstrap identity create an account's admin user (forgotten right after)."""
    with _lock:
        BOOTSTRAP[signer.access_key] = signer


def forget_bootstrap(access_key: str) -> None:
    with _lock:
        BOOTSTRAP.pop(access_key, None)


def deactivate() -> None:
    """Undo :func:`activate` once the last sandbox closes."""
    global _active
    with _lock:
        _active = max(0, _active - 1)
        if _active:
            return
        from moto.s3.models import FakeBucket
        from moto.sts.models import STSBackend

        clock.reset()
        loader.unshare_loaders()
        kmskeys.restore()
        if _saved_iam_utcnow is not None:
            import moto.iam.models as iam_models

            iam_models.utcnow = _saved_iam_utcnow
        if _saved_process_request is not None:
            from moto.core.botocore_stubber import BotocoreStubber

            # moto's class is patched for the sandbox's lifetime (restored by deactivate).
            BotocoreStubber.process_request = _saved_process_request  # type: ignore[method-assign]
        if _saved_get_permission is not None:
            # moto's class is patched for the sandbox's lifetime (restored by deactivate).
            FakeBucket.get_permission = _saved_get_permission  # type: ignore[method-assign]
        if _saved_assume_role is not None:
            # moto's class is patched for the sandbox's lifetime (restored by deactivate).
            STSBackend.assume_role = _saved_assume_role  # type: ignore[method-assign]
        if _saved_ddb_writes:
            from moto.dynamodb.responses import DynamoHandler

            for name, original in _saved_ddb_writes.items():
                setattr(DynamoHandler, name, original)
            _saved_ddb_writes.clear()


class EnforcingMiddleware:
    """WSGI middleware for server mode: the same checks in front of moto's app."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
        query = environ.get("QUERY_STRING", "")
        # the path as sent (RAW_URI), not PATH_INFO, which is already percent-decoded: decoding
        # twice would check another key than the one moto acts on
        raw = str(environ.get("RAW_URI") or "").split("?", 1)[0]
        path = raw if raw.startswith("/") else quote(environ.get("PATH_INFO", ""))
        url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").lower()] = environ[name]
        body = None
        names = dict(parse_qsl(query, keep_blank_values=True))
        deletes = (environ.get("REQUEST_METHOD") == "POST" and "delete" in names) or (
            environ.get("REQUEST_METHOD") == "PUT" and ("retention" in names or "policy" in names))
        # A request without x-amz-content-sha256 (every non-S3 request) is signed over its
        # body, so the body is read to verify the signature.
        if deletes or "x-amz-content-sha256" not in headers:
            length = str(environ.get("CONTENT_LENGTH") or "0")
            if not length.isdigit() or int(length) > _MAX_READ_BODY:
                length = "0"  # not read: the signature check then fails and refuses it
            body = environ["wsgi.input"].read(int(length)) if int(length) else b""
            environ["wsgi.input"] = io.BytesIO(body)
        latency.pause_for(environ.get("REQUEST_METHOD", "GET"), url, headers)  # when switched on
        refusal = _enforcer.check(environ.get("REQUEST_METHOD", "GET"), url, headers, body)
        if refusal is None:
            return self.app(environ, start_response)
        if body is None or (not body and environ.get("CONTENT_LENGTH") not in (None, "", "0")):
            _drain(environ)  # a client still sending its upload would see a broken connection
        status, out_headers, payload = refusal_response(refusal, "x-amz-target" in headers)
        if environ.get("REQUEST_METHOD") == "HEAD":
            payload = b""
        reason = {400: "Bad Request", 403: "Forbidden"}[status]
        start_response(f"{status} {reason}", [*out_headers.items(),
                                              ("Content-Length", str(len(payload)))])
        return [payload]


def _drain(environ: dict[str, Any]) -> None:
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        while length > 0:
            chunk = stream.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)
    elif environ.get("wsgi.input_terminated"):
        while stream.read(1 << 16):
            pass
