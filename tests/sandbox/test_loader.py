"""Sessions made while a sandbox is open share botocore's data loader, and nothing else."""

from __future__ import annotations

import boto3
import botocore.session

from securepipe.access.credentials import session_with_credentials
from securepipe.sandbox import start_sandbox


def _loader(session: boto3.Session) -> object:
    return session._session.get_component("data_loader")


def test_sessions_share_one_loader_while_a_sandbox_is_open() -> None:
    original = botocore.session.create_loader
    sb = start_sandbox()
    admin = sb.session
    try:
        other = session_with_credentials(sb.session, "AKIAEXAMPLE", "secret")
        plain = boto3.Session(region_name="us-east-1")
        assert _loader(other) is _loader(sb.session) is _loader(plain)
        paths = list(_loader(plain).search_paths)
        for _ in range(5):  # boto3 appends its data folder once per Session
            boto3.Session(region_name="us-east-1")
        assert list(_loader(plain).search_paths) == paths
        assert len(set(paths)) == len(paths)
        # Only the parsed data is shared: each session keeps its own credentials.
        assert other.get_credentials().access_key == "AKIAEXAMPLE"
        assert sb.session.get_credentials().access_key != "AKIAEXAMPLE"
        # A client of the shared loader still works against the sandbox.
        assert "Buckets" in sb.session.client("s3").list_buckets()
    finally:
        sb.close()
    assert botocore.session.create_loader is original
    after = boto3.Session(region_name="us-east-1")
    assert _loader(after) is not _loader(admin)


def test_own_loaders_gives_each_session_its_own_as_on_a_real_account() -> None:
    from securepipe.sandbox.loader import own_loaders

    sb = start_sandbox()
    try:
        with own_loaders():
            a, b = boto3.Session(region_name="us-east-1"), boto3.Session(region_name="us-east-1")
            assert _loader(a) is not _loader(b)
        assert _loader(boto3.Session(region_name="us-east-1")) is _loader(sb.session)
    finally:
        sb.close()
