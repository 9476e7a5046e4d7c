"""securepipe.clients: one client per session and service while the session's handlers stay as
they were, gone with its session."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from securepipe.clients import shared_client


def _session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                         region_name="eu-west-1")


def _counting(session: boto3.Session) -> list[str]:
    """Record every client ``session`` makes."""
    made: list[str] = []
    make = session.client

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        made.append(service)
        return make(service, *args, **kwargs)

    session.client = client  # an instance attribute: this session only
    return made


def test_one_client_per_session_and_service() -> None:
    a, b = _session(), _session()
    made = _counting(a)
    s3 = shared_client(a, "s3")
    assert shared_client(a, "s3") is s3 and made == ["s3"]
    assert shared_client(a, "kms") is not s3
    assert shared_client(b, "s3") is not s3          # another session: its own credentials
    assert s3.meta.service_model.service_name == "s3" and s3.meta.region_name == "eu-west-1"


def test_a_handler_registered_on_the_session_later_reaches_the_next_call() -> None:
    """A client copies the session's handlers when made: after a registration (or a removal)
    the shared client is replaced, so the new handler sees the kit's next call."""
    session = _session()
    before = shared_client(session, "sts")
    seen: list[str] = []

    def note(**kwargs: Any) -> None:
        seen.append(kwargs["model"].name)

    session.events.register("provide-client-params.sts.GetCallerIdentity", note)
    after = shared_client(session, "sts")
    assert after is not before and shared_client(session, "sts") is after
    with Stubber(after) as stub:
        stub.add_response("get_caller_identity", {"Account": "123456789012"})
        after.get_caller_identity()
    assert seen == ["GetCallerIdentity"]
    session.events.unregister("provide-client-params.sts.GetCallerIdentity", note)
    assert shared_client(session, "sts") is not after


def test_clients_go_with_their_session() -> None:
    session = _session()

    def holding(held: Any = session, **_: Any) -> Any:    # a handler that keeps its session
        return held

    session.events.register("before-call", holding)
    gone = weakref.ref(shared_client(session, "s3"))
    del session, holding
    gc.collect()
    assert gone() is None


def test_credentials_config_and_region_changed_later_reach_the_next_call() -> None:
    from botocore.config import Config
    session = _session()
    first = shared_client(session, "s3")
    session._session.set_credentials("AKIDNEWKEY", "new-secret")
    second = shared_client(session, "s3")
    assert second is not first and second._request_signer._credentials.access_key == "AKIDNEWKEY"
    session._session.set_default_client_config(Config(retries={"total_max_attempts": 6}))
    third = shared_client(session, "s3")
    assert third is not second and third.meta.config.retries["total_max_attempts"] == 6
    session._session.set_default_client_config(None)                 # restored: replaced again
    assert shared_client(session, "s3") is not third
    session._session.set_config_variable("region", "us-east-1")
    assert shared_client(session, "s3").meta.region_name == "us-east-1"


def test_no_client_is_kept_while_the_session_has_no_credentials(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """botocore looks for credentials again on each new client while it has none (keys exported
    later, an instance-metadata service slow to answer): so does the kit."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    session = boto3.Session(region_name="eu-west-1")
    blind = shared_client(session, "sts")
    assert blind._request_signer._credentials is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLATER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "later")
    found = shared_client(session, "sts")
    assert found is not blind and found._request_signer._credentials.access_key == "AKIDLATER"
    assert shared_client(session, "sts") is found


def test_a_handler_registered_while_a_client_is_made_is_not_missed() -> None:
    """Another thread registers a handler while the client is being made: the client may lack
    it, so the next call gets a new one."""
    session = _session()
    make = session.client

    def slow(service: str, *args: Any, **kwargs: Any) -> Any:
        client = make(service, *args, **kwargs)
        session.events.register("provide-client-params.sts", lambda **_: None)  # meanwhile
        return client

    session.client = slow  # an instance attribute: this session only
    first = shared_client(session, "sts")
    session.client = make
    assert shared_client(session, "sts") is not first


def test_a_client_creation_hook_may_call_the_kit() -> None:
    session = _session()
    inner: list[Any] = []

    def hook(**_: Any) -> None:
        if not inner:
            inner.append(shared_client(session, "kms"))   # same thread, same session

    session.events.register("creating-client-class.s3", hook)
    shared_client(session, "s3")
    assert inner and inner[0].meta.service_model.service_name == "kms"


def test_a_session_of_another_kind_gets_a_client_each_time() -> None:
    class Stand:
        def __init__(self) -> None:
            self.made = 0

        def client(self, service: str) -> Any:
            self.made += 1
            return object()

    session = Stand()
    assert shared_client(session, "s3") is not shared_client(session, "s3")
    assert session.made == 2


def test_threads_asking_at_once_share_one_client() -> None:
    session = _session()
    made = _counting(session)
    start = threading.Barrier(8)
    got: list[Any] = []

    def ask() -> None:
        start.wait()
        got.append(shared_client(session, "dynamodb"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == ["dynamodb"] and len({id(c) for c in got}) == 1
