"""securepipe.clients: one client per session and service while the session's handlers stay as
they were, gone with its session."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import boto3
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
    gone = weakref.ref(shared_client(session, "s3"))
    del session
    gc.collect()
    assert gone() is None


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
