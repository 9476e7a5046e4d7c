"""A fresh, isolated, moto-mocked AWS account with the kit's standard resources.

One call gives a notebook or a test an account that holds a customer-managed KMS key, the four
data buckets (raw uploads, features, archive, audit) and an admin identity, and hands back a
plain :class:`boto3.Session`. Everything downstream takes that session (or a client made from
it), so the same code runs unchanged against a real account.

Two modes:

* **in-process** (default): moto's ``mock_aws`` intercepts botocore; starts in milliseconds.
* **server**: moto's WSGI app on ``127.0.0.1`` at a random port, for tools that need an
  endpoint URL. The session is backed by a generated AWS config profile (``endpoint_url``,
  region, credentials), exactly how a real tool is pointed at an account.

Isolation: every sandbox is its own AWS account id, and its bucket names carry that id, so two
sandboxes open in one process never see each other's state; closing a sandbox purges its
account from moto's in-memory backends.

moto emulates the AWS API, not AWS's enforcement: see :mod:`securepipe.sandbox.gaps` for the
controls it stores but does not enforce, and what the kit does about each.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import boto3
import botocore.session

from securepipe import clock
from securepipe.errors import InvalidParameterError, SandboxError
from securepipe.sandbox import hooks
from securepipe.sandbox.signatures import Signer

DEFAULT_REGION = "eu-west-1"
#: The bucket roles every sandbox (and the kit's layout on a real account) has.
BUCKET_ROLES = ("raw", "features", "archive", "audit")
KMS_ALIAS = "alias/securepipe-data"
#: A separate customer-managed key for the cold archive (its own key, its own role).
ARCHIVE_KMS_ALIAS = "alias/securepipe-archive"
#: The asymmetric (SIGN_VERIFY) key that signs audit-trail checkpoints and erasure receipts.
SIGNING_KMS_ALIAS = "alias/securepipe-signing"
#: Default Object Lock retention (COMPLIANCE) of the audit bucket: every put there is locked.
AUDIT_RETENTION_DAYS = 365
ADMIN_USER = "securepipe-admin"

_ACCOUNT_BASE = 210_000_000_000
_account_counter = itertools.count(1)
_counter_lock = threading.Lock()


def _next_account_id() -> str:
    # Deterministic within a process (first sandbox is 210000000001), so notebook output is
    # reproducible, and distinct for every sandbox, so their state never mixes.
    with _counter_lock:
        return f"{_ACCOUNT_BASE + next(_account_counter):012d}"


@dataclass(frozen=True)
class SandboxResources:
    """What a sandbox account holds: names and ARNs for the kit's standard resources."""

    account_id: str
    region: str
    kms_key_id: str
    kms_key_arn: str
    kms_alias: str
    buckets: Mapping[str, str]
    archive_key_arn: str
    admin_user_arn: str
    signing_key_arn: str

    def bucket(self, role: str) -> str:
        """The bucket name for a role in :data:`BUCKET_ROLES` (``raw``, ``features``, ...)."""
        try:
            return self.buckets[role]
        except KeyError:
            raise InvalidParameterError(
                f"unknown bucket role {role!r}; expected one of {', '.join(BUCKET_ROLES)}"
            ) from None

    @property
    def kms_alias_arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:{self.kms_alias}"


def bucket_name(role: str, account_id: str, region: str) -> str:
    """The kit's bucket naming convention: ``securepipe-<role>-<account>-<region>``.

    Globally unique on AWS (account id and region are part of it) and in the sandbox.
    """
    if role not in BUCKET_ROLES:
        raise InvalidParameterError(f"unknown bucket role {role!r}")
    return f"securepipe-{role}-{account_id}-{region}"


@dataclass
class _State:
    mock: Any = None
    tmpdir: Path | None = None
    session: boto3.Session | None = None
    resources: SandboxResources | None = None
    endpoint_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Sandbox:
    """A moto-mocked AWS account with the kit's standard resources.

    Use it as a context manager (``with Sandbox() as sb: sb.session.client("s3")``) or call
    :meth:`start` and :meth:`close` yourself, as a notebook does.

    :param region: AWS region of the account's regional resources.
    :param server: serve moto on ``127.0.0.1`` (random port) instead of in-process.
    :param tls: with ``server``, serve HTTPS with a certificate from a CA the kit generates; the
        session verifies against that CA. A second, plain-HTTP listener
        (:attr:`plain_endpoint_url`) exists only so lessons can show plain HTTP being refused.
    """

    def __init__(
        self, *, region: str = DEFAULT_REGION, server: bool = False, tls: bool = False
    ) -> None:
        if not isinstance(region, str) or not region or len(region) > 32:
            raise InvalidParameterError(f"invalid region {region!r}")
        if tls and not server:
            raise InvalidParameterError("tls=True needs server=True (in-process mode has no wire)")
        self.region = region
        self.server = bool(server)
        self.tls = bool(tls)
        self.account_id = _next_account_id()
        self._state: _State | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Start moto, create the account's resources and return ``self``."""
        if self._state is not None:
            raise SandboxError("sandbox already started")
        state = _State()
        self._state = state
        hooks.activate()
        hooks.register_account(self.account_id, self.region)
        state.extra["enforcing"] = True
        try:
            if self.server:
                self._start_server(state)
            else:
                from moto import mock_aws

                state.mock = mock_aws()
                state.mock.start(reset=False)
            admin_key = self._bootstrap_admin()
            state.session = self._make_session(admin_key)
            state.resources = _create_standard_resources(
                state.session, self.account_id, self.region
            )
        except Exception as exc:
            self.close()
            if isinstance(exc, SandboxError):
                raise
            raise SandboxError(f"could not create the sandbox account: {exc}") from exc
        return self

    def close(self) -> None:
        """Stop moto and forget everything this account held. Safe to call twice."""
        state, self._state = self._state, None
        if state is None:
            return
        hooks.forget_account(self.account_id)
        _purge_account(self.account_id)
        for server, thread in state.extra.get("servers", []):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        if state.extra.get("enforcing"):
            hooks.deactivate()
        if state.mock is not None:
            state.mock.stop(remove_data=False)
        if state.tmpdir is not None:
            shutil.rmtree(state.tmpdir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what callers use ----------------------------------------------------------------------
    @property
    def session(self) -> boto3.Session:
        """A boto3 Session authenticated as the account's admin identity."""
        return self._require().session

    @property
    def resources(self) -> SandboxResources:
        # _require() returns the open state (the type checker cannot see it).
        return self._require().resources  # type: ignore[return-value]

    @property
    def endpoint_url(self) -> str | None:
        """``http://127.0.0.1:<port>`` in server mode, ``None`` in-process."""
        return self._require().endpoint_url

    @property
    def plain_endpoint_url(self) -> str | None:
        """With ``tls=True``: a plain-HTTP listener on the same account, for refusal demos."""
        return self._require().extra.get("plain_endpoint_url")

    @property
    def ca_bundle(self) -> Path | None:
        """With ``tls=True``: the PEM file of the CA that signed the sandbox's certificate."""
        return self._require().extra.get("ca_bundle")

    @property
    def config_file(self) -> Path | None:
        """In server mode, the AWS config file whose profile points tools at the sandbox."""
        state = self._require()
        return None if state.tmpdir is None else state.tmpdir / "config"

    PROFILE = "securepipe-sandbox"

    def client(self, service: str, **kwargs: Any) -> Any:
        """Shorthand for ``self.session.client(service, **kwargs)``."""
        return self.session.client(service, **kwargs)

    def move_clock(self, delta: dt.timedelta) -> dt.datetime:
        """Move the sandbox clock (session expiry, presigned URLs); reset when sandboxes close.

        moto never expires sessions or presigned URLs; the kit's emulated enforcement does, by
        this clock (see :mod:`securepipe.sandbox.emulation`).
        """
        self._require()
        return clock.move(delta)

    def inventory(self) -> list[dict[str, str]]:
        """List what the account holds (KMS keys, buckets, IAM users), read back through the API."""
        return describe_account(self.session)

    # -- internals -----------------------------------------------------------------------------
    def _require_state(self) -> _State:
        if self._state is None:
            raise SandboxError("sandbox is not started")
        return self._state

    def _require(self) -> _State:
        if self._state is None or self._state.session is None:
            raise SandboxError("sandbox is not started; use `with Sandbox() as sb:` or start()")
        return self._state

    def _start_server(self, state: _State) -> None:
        from moto.moto_server.threaded_moto_server import MotoRequestHandler
        from moto.server import DomainDispatcherApplication, create_backend_app

        class _QuietHandler(MotoRequestHandler):
            # Send each response as soon as it is written: with Nagle on, a response split into
            # headers and body waits for the client's delayed ACK (tens of ms per TLS request).
            disable_nagle_algorithm = True

            def log(self, type: str, message: str, *args: Any) -> None:
                pass  # keep notebook output clean; moto's own errors still raise in the client

        # The kit's emulated enforcement sits in front of moto's app (see hooks.py).
        app = hooks.EnforcingMiddleware(DomainDispatcherApplication(create_backend_app))
        state.tmpdir = Path(tempfile.mkdtemp(prefix="securepipe-sandbox-"))
        state.extra["servers"] = []
        if self.tls:
            from securepipe.sandbox.tls import server_ssl_context, write_tls_material

            files = write_tls_material(state.tmpdir / "tls")
            port = self._serve(state, app, _QuietHandler, server_ssl_context(files))
            state.endpoint_url = f"https://127.0.0.1:{port}"
            state.extra["ca_bundle"] = files.ca_cert
            plain = self._serve(state, app, _QuietHandler, None)
            state.extra["plain_endpoint_url"] = f"http://127.0.0.1:{plain}"
        else:
            port = self._serve(state, app, _QuietHandler, None)
            state.endpoint_url = f"http://127.0.0.1:{port}"

    @staticmethod
    def _serve(state: _State, app: Any, handler: Any, ssl_context: Any) -> int:
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler,
                             ssl_context=ssl_context)
        thread = threading.Thread(target=server.serve_forever, name="securepipe-moto", daemon=True)
        thread.start()
        state.extra["servers"].append((server, thread))
        return int(server.server_port)

    def _bootstrap_session(self) -> boto3.Session:
        """A session whose requests land in this sandbox's account (moto's account header).

        It signs with a random one-off key the emulation knows only until the admin user
        exists (:meth:`_bootstrap_admin`), and may only call IAM.
        """
        access_key = "ASPBOOT" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        hooks.register_bootstrap(Signer(access_key, secret, None, self.account_id,
                                        f"arn:aws:iam::{self.account_id}:root", self.region))
        self._require_state().extra["bootstrap_key"] = access_key
        session = self._make_session((access_key, secret))
        account_id = self.account_id

        def _route(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account_id

        session.events.register("before-sign", _route)
        return session

    def _bootstrap_admin(self) -> tuple[str, str]:
        iam = self._bootstrap_session().client("iam")
        iam.create_user(UserName=ADMIN_USER, Tags=[{"Key": "securepipe", "Value": "sandbox"}])
        iam.put_user_policy(
            UserName=ADMIN_USER,
            PolicyName="sandbox-admin",
            PolicyDocument=(
                '{"Version":"2012-10-17","Statement":'
                '[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
            ),
        )
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        hooks.forget_bootstrap(self._require_state().extra.pop("bootstrap_key"))
        return key["AccessKeyId"], key["SecretAccessKey"]

    def _make_session(self, creds: tuple[str, str]) -> boto3.Session:
        state = self._state
        assert state is not None
        if state.endpoint_url is None:
            return boto3.Session(
                aws_access_key_id=creds[0],
                aws_secret_access_key=creds[1],
                region_name=self.region,
            )
        # Server mode: a real AWS config profile, so any tool (and any botocore session, such as
        # the AWS Encryption SDK's) reaches the sandbox the way it would reach a real account.
        assert state.tmpdir is not None
        config = state.tmpdir / "config"
        config.write_text(
            f"[profile {self.PROFILE}]\n"
            f"region = {self.region}\n"
            f"endpoint_url = {state.endpoint_url}\n"
            f"aws_access_key_id = {creds[0]}\n"
            f"aws_secret_access_key = {creds[1]}\n"
            + (f"ca_bundle = {state.extra['ca_bundle']}\n" if "ca_bundle" in state.extra else ""),
            encoding="utf-8",
        )
        botocore_session = botocore.session.Session()
        botocore_session.set_config_variable("config_file", str(config))
        botocore_session.set_config_variable("credentials_file", str(state.tmpdir / "none"))
        botocore_session.set_config_variable("profile", self.PROFILE)
        if "ca_bundle" in state.extra:
            # Set on the session too: an AWS_CA_BUNDLE in the environment would otherwise win
            # over the profile's ca_bundle and the client would not trust the sandbox's CA.
            botocore_session.set_config_variable("ca_bundle", str(state.extra["ca_bundle"]))
        return boto3.Session(botocore_session=botocore_session)


def start_sandbox(
    *, region: str = DEFAULT_REGION, server: bool = False, tls: bool = False
) -> Sandbox:
    """Create and start a :class:`Sandbox` in one call (close it with ``sb.close()``)."""
    return Sandbox(region=region, server=server, tls=tls).start()


def _customer_key(kms: Any, alias: str, tag: str, purpose: str) -> dict[str, Any]:
    """A symmetric customer-managed key with an alias and automatic rotation (CreateKey)."""
    key: dict[str, Any] = kms.create_key(
        Description=f"securepipe: customer-managed key for {purpose}",
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
        Tags=[{"TagKey": "securepipe", "TagValue": tag}],
    )["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    kms.enable_key_rotation(KeyId=key["KeyId"])
    return key


def _create_standard_resources(
    session: boto3.Session, account_id: str, region: str
) -> SandboxResources:
    """Create the customer-managed key, the four buckets and read back the admin identity."""
    kms = session.client("kms")
    key = _customer_key(kms, KMS_ALIAS, "data", "voice training data")
    archive_key = _customer_key(kms, ARCHIVE_KMS_ALIAS, "archive", "the cold archive")
    # An asymmetric signing key (CreateKey, KeySpec ECC_NIST_P256, KeyUsage SIGN_VERIFY): only a
    # writer role may kms:Sign; verifiers need only its public key.
    signing_key = kms.create_key(
        Description="securepipe: signs audit-trail checkpoints and erasure receipts",
        KeyUsage="SIGN_VERIFY",
        KeySpec="ECC_NIST_P256",
        Tags=[{"TagKey": "securepipe", "TagValue": "signing"}],
    )["KeyMetadata"]
    kms.create_alias(AliasName=SIGNING_KMS_ALIAS, TargetKeyId=signing_key["KeyId"])

    s3 = session.client("s3")
    buckets: dict[str, str] = {}
    for role in BUCKET_ROLES:
        name = bucket_name(role, account_id, region)
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        if role in ("audit", "archive"):
            # Object Lock (retention, legal holds) can only be switched on at creation.
            kwargs["ObjectLockEnabledForBucket"] = True
        s3.create_bucket(**kwargs)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if role == "audit":
            # A default retention locks every put, a plain one included (PutObjectLock-
            # Configuration); moto applies it, dated by its own wall clock, not the sandbox's.
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": AUDIT_RETENTION_DAYS}}})
        buckets[role] = name

    admin_arn = session.client("sts").get_caller_identity()["Arn"]
    if f":{account_id}:" not in admin_arn:
        raise SandboxError(f"admin identity landed in the wrong account: {admin_arn}")
    return SandboxResources(
        account_id=account_id,
        region=region,
        kms_key_id=key["KeyId"],
        kms_key_arn=key["Arn"],
        kms_alias=KMS_ALIAS,
        buckets=MappingProxyType(buckets),
        archive_key_arn=archive_key["Arn"],
        admin_user_arn=admin_arn,
        signing_key_arn=signing_key["Arn"],
    )


def describe_account(session: boto3.Session) -> list[dict[str, str]]:
    """Rows describing the customer-managed KMS keys, buckets and IAM users an account holds.

    Wraps ListKeys/DescribeKey/ListAliases (KMS), ListBuckets/GetBucketVersioning/
    GetObjectLockConfiguration (S3) and ListUsers (IAM); works on a real account too.
    """
    rows: list[dict[str, str]] = []
    kms = session.client("kms")
    aliases: dict[str, list[str]] = {}
    for alias in kms.list_aliases()["Aliases"]:
        if "TargetKeyId" in alias:
            aliases.setdefault(alias["TargetKeyId"], []).append(alias["AliasName"])
    for entry in kms.list_keys()["Keys"]:
        meta = kms.describe_key(KeyId=entry["KeyId"])["KeyMetadata"]
        if meta.get("KeyManager") != "CUSTOMER":
            continue
        rotation = kms.get_key_rotation_status(KeyId=entry["KeyId"])["KeyRotationEnabled"]
        rows.append({
            "kind": "kms key",
            "name": ", ".join(aliases.get(entry["KeyId"], [])) or entry["KeyId"],
            "details": f"customer-managed, {meta['KeyState']}, rotation "
            + ("on" if rotation else "off"),
        })
    s3 = session.client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        versioning = s3.get_bucket_versioning(Bucket=name).get("Status", "Off")
        try:
            lock = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
            lock_state = lock.get("ObjectLockEnabled", "Disabled")
        except s3.exceptions.ClientError:
            lock_state = "Disabled"
        rows.append({
            "kind": "s3 bucket",
            "name": name,
            "details": f"versioning {versioning}, object lock {lock_state}",
        })
    for user in session.client("iam").list_users()["Users"]:
        rows.append({"kind": "iam user", "name": user["UserName"], "details": user["Arn"]})
    return rows


def _purge_account(account_id: str) -> None:
    """Drop one account's state from moto's in-memory backends (sandbox clean-up only)."""
    try:
        from moto.core.base_backend import BackendDict
        from moto.s3.models import s3_backends
    except ImportError:  # pragma: no cover - moto is a dependency
        return
    # moto's registry of backend dicts is class-level state (mypy: generic class variable).
    for backend in list(BackendDict._instances):  # type: ignore[misc]
        if account_id in backend:
            try:
                backend[account_id].reset()
            finally:
                dict.__delitem__(backend, account_id)
    for name, (_, owner) in list(s3_backends.bucket_accounts.items()):
        if owner == account_id:
            s3_backends.bucket_accounts.pop(name, None)
