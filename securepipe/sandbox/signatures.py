"""Who signed a sandbox request: the SigV4 signature recomputed with botocore's own signer.

moto checks no signature: it serves any access key id, any credential scope and any signature.
The emulation therefore authenticates every request itself before it decides anything, and a
request it cannot authenticate is refused (fails closed). The signature is recomputed with
botocore's SigV4 signer (:class:`botocore.auth.SigV4Auth`, :class:`botocore.auth.S3SigV4Auth`)
from the secret the sandbox's IAM or STS holds for the access key, never with the kit's own
cryptography; the two forms AWS documents are read:

* the ``Authorization`` header
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html);
* the query string of a presigned URL, S3 only
  (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html).

The credential scope (``<key>/<yyyymmdd>/<region>/<service>/aws4_request``) must name the service
moto will dispatch the request to and the sandbox's region, and its date must be the date of
``X-Amz-Date``. SigV2 and anonymous requests are refused.

What is *not* checked (an emulation, and says so in :mod:`securepipe.sandbox.gaps`): clock skew
(the sandbox clock can be moved years while botocore signs with the real clock), the payload hash
against the body, and the per-chunk signatures of ``aws-chunked`` uploads.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from securepipe.sandbox.requests import headers_get

_HEADER_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,\s]+),\s?SignedHeaders=([a-z0-9;-]+),\s?"
    r"Signature=([0-9a-f]{64})")
_SCOPE = re.compile(r"([A-Z0-9]{16,128})/(\d{8})/([a-z0-9-]{1,32})/([a-z0-9-]{1,32})/aws4_request")
_AMZ_DATE = re.compile(r"(\d{8})T\d{6}Z")
#: The longest a SigV4 presigned URL may live (7 days).
MAX_PRESIGN_EXPIRES_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Signer:
    """A principal the sandbox holds credentials for."""

    access_key: str
    secret_key: str
    session_token: str | None
    account: str
    arn: str
    #: the sandbox region of the principal's account
    region: str
    #: moto's record of the role session (``None`` for an IAM user or the bootstrap identity)
    session: Any = None


@dataclass(frozen=True)
class Signature:
    """A verified signature: who signed, the scope's service and region, and how."""

    signer: Signer
    service: str
    region: str
    signed_at: dt.datetime
    #: ``REST-HEADER`` or ``REST-QUERY-STRING`` (the ``s3:authType`` condition key)
    auth_type: str
    #: the presigned URL's ``X-Amz-Expires``, in seconds
    expires_s: int | None = None


class Unverified(Exception):
    """The request cannot be attributed to a known principal with a valid signature."""


def verify(method: str, url: str, headers: Mapping[str, Any], body: bytes | str | None,
           lookup: Callable[[str], Signer | None]) -> Signature:
    """Check a request's SigV4 signature; raise :class:`Unverified` with the reason if it fails.

    ``url`` is the URL as sent (path and query percent-encoded as on the wire; in-process, the
    URL botocore signed), ``headers`` the request's headers (a ``host`` header, or the URL's
    host), ``lookup`` maps an access key id to the credentials the sandbox holds for it.
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    names = [k for k, _ in pairs]
    authorization = str(headers_get(headers, "authorization", "") or "")
    if "X-Amz-Signature" in names:
        if authorization:
            raise Unverified("both an Authorization header and a presigned query")
        return _verify_query(method, parts, pairs, headers, lookup)
    if authorization.startswith("AWS ") or "AWSAccessKeyId" in names or "Signature" in names:
        raise Unverified("a SigV2 signature, which the sandbox does not verify")
    if not authorization:
        raise Unverified("an anonymous request (no signature)")
    match = _HEADER_AUTH.fullmatch(authorization.strip())
    if match is None:
        raise Unverified("not a SigV4 Authorization header")
    credential, signed_headers, signature = match.groups()
    amz_date = str(headers_get(headers, "x-amz-date", "") or "")
    access_key, service, region, signed_at, signer = _scope(credential, amz_date, lookup)
    token = headers_get(headers, "x-amz-security-token")
    if signer.session_token is not None and "x-amz-security-token" not in signed_headers.split(";"):
        raise Unverified("the session token is not signed")
    _check_token(signer, token)
    if service == "s3" and "x-amz-content-sha256" not in signed_headers.split(";"):
        raise Unverified("an S3 request whose payload hash is not signed")
    request = _request(method, parts, signed_headers, headers, body)
    cls = S3SigV4Auth if service == "s3" else SigV4Auth
    auth = cls(Credentials(access_key, signer.secret_key, signer.session_token), service, region)
    _compare(auth, request, amz_date, signed_headers, signature)
    return Signature(signer, service, region, signed_at, "REST-HEADER")


def _verify_query(method: str, parts: Any, pairs: list[tuple[str, str]],
                  headers: Mapping[str, Any], lookup: Callable[[str], Signer | None]
                  ) -> Signature:
    query = dict(pairs)
    if len(query) != len(pairs):
        raise Unverified("a presigned query parameter is given twice")
    if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise Unverified("a presigned URL not signed with AWS4-HMAC-SHA256")
    access_key, service, region, signed_at, signer = _scope(
        query.get("X-Amz-Credential", ""), query.get("X-Amz-Date", ""), lookup)
    if service != "s3":
        raise Unverified("a presigned URL for a service other than S3")
    expires = query.get("X-Amz-Expires", "")
    if not expires.isdigit() or not 1 <= int(expires) <= MAX_PRESIGN_EXPIRES_S:
        raise Unverified("X-Amz-Expires is not a number of seconds from 1 to 604800")
    _check_token(signer, query.get("X-Amz-Security-Token"))
    signed_headers = query.get("X-Amz-SignedHeaders", "")
    if not re.fullmatch(r"[a-z0-9;-]+", signed_headers):
        raise Unverified("X-Amz-SignedHeaders is malformed")
    # The canonical query string holds every parameter except X-Amz-Signature, as sent.
    kept = "&".join(p for p in parts.query.split("&")
                    if p.partition("=")[0] != "X-Amz-Signature")
    unsigned = parts._replace(query=kept)
    request = _request(method, unsigned, signed_headers, headers, None)
    auth = S3SigV4QueryAuth(Credentials(access_key, signer.secret_key, signer.session_token),
                            service, region)
    _compare(auth, request, query["X-Amz-Date"], signed_headers, query["X-Amz-Signature"])
    return Signature(signer, service, region, signed_at, "REST-QUERY-STRING", int(expires))


def _scope(credential: str, amz_date: str, lookup: Callable[[str], Signer | None]
           ) -> tuple[str, str, str, dt.datetime, Signer]:
    scope = _SCOPE.fullmatch(credential)
    if scope is None:
        raise Unverified("the credential scope is not <key>/<yyyymmdd>/<region>/<service>/"
                         "aws4_request")
    access_key, day, region, service = scope.groups()
    date = _AMZ_DATE.fullmatch(amz_date)
    if date is None or date.group(1) != day:
        raise Unverified("X-Amz-Date is missing, malformed or on another day than the scope")
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise Unverified("X-Amz-Date is not a date") from None
    signer = lookup(access_key)
    if signer is None:
        raise Unverified("the access key id is not known to the sandbox")
    return access_key, service, region, signed_at, signer


def _check_token(signer: Signer, token: Any) -> None:
    if signer.session_token is None:
        if token is not None:
            raise Unverified("a session token with long-term credentials")
        return
    if not isinstance(token, str) or not hmac.compare_digest(token, signer.session_token):
        raise Unverified("the session token does not belong to this access key")


def _request(method: str, parts: Any, signed_headers: str, headers: Mapping[str, Any],
             body: bytes | str | None) -> AWSRequest:
    names = signed_headers.split(";")
    if "host" not in names:
        raise Unverified("the Host header is not signed")
    chosen: dict[str, str] = {}
    for name in names:
        value = headers_get(headers, name)
        if value is None and name == "host":
            value = parts.netloc
        if value is None:
            raise Unverified(f"signed header {name!r} is missing")
        chosen[name] = str(value)
    return AWSRequest(method=method.upper(), url=urlunsplit(parts), headers=chosen,
                      data=body if isinstance(body, bytes | str) else b"")


def _compare(auth: SigV4Auth | SigV4QueryAuth, request: AWSRequest, amz_date: str,
             signed_headers: str, signature: str) -> None:
    request.context["timestamp"] = amz_date
    # headers_to_sign drops some headers botocore never signs: the lists must still agree
    if auth.signed_headers(auth.headers_to_sign(request)) != signed_headers:
        raise Unverified("the signed header list is not canonical")
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, signature):
        raise Unverified("the signature does not match")
