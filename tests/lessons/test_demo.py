from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from securepipe.errors import DecryptionError
from securepipe.lessons.demo import EMULATION_MARK, expect_refusal, expect_success


def _raise(exc: Exception) -> None:
    raise exc


def test_refusal_must_happen() -> None:
    with pytest.raises(AssertionError):
        expect_refusal(lambda: None, "an attack that works")


def test_refusal_names_its_origin() -> None:
    emulated = ClientError({"Error": {"Code": "AccessDenied",
                                      "Message": f"no [{EMULATION_MARK}]"}}, "GetObject")
    real = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")
    assert "emulation" in expect_refusal(lambda: _raise(emulated), "x")
    assert "emulation" not in expect_refusal(lambda: _raise(real), "x")
    assert "DecryptionError" in expect_refusal(lambda: _raise(DecryptionError()), "x")


def test_other_errors_are_not_refusals() -> None:
    with pytest.raises(ZeroDivisionError):
        expect_refusal(lambda: 1 / 0, "a bug is not a refusal")


def test_success_returns_the_result() -> None:
    assert expect_success(lambda: 42, "x") == 42


def test_http_errors_are_refusals() -> None:
    import io
    import urllib.error

    def forbidden() -> None:
        raise urllib.error.HTTPError("http://x", 403, "Forbidden", {},  # type: ignore[arg-type]
                                     io.BytesIO(f"<Error>{EMULATION_MARK}</Error>".encode()))

    assert "HTTP 403 (emulation" in expect_refusal(forbidden, "x")

    def server_error() -> None:
        raise urllib.error.HTTPError("http://x", 500, "Boom", {}, io.BytesIO(b""))  # type: ignore[arg-type]

    with pytest.raises(urllib.error.HTTPError):
        expect_refusal(server_error, "a crash is not a refusal")


def test_wrapped_emulated_refusal_is_labelled() -> None:
    from securepipe.errors import EncryptionError

    def wrapped() -> None:
        try:
            raise ClientError({"Error": {"Code": "AccessDeniedException",
                                         "Message": f"no [{EMULATION_MARK}]"}}, "GenerateDataKey")
        except ClientError as exc:
            raise EncryptionError("could not encrypt") from exc

    assert expect_refusal(wrapped, "x").endswith("(emulation of AWS by the kit's sandbox)")


@pytest.mark.parametrize("error", [
    ClientError({"Error": {"Code": "NoSuchKey", "Message": "no"}}, "GetObject"),
    ClientError({"Error": {"Code": "NoSuchBucket", "Message": "no"}}, "GetObject"),
])
def test_other_aws_errors_are_not_refusals(error: Exception) -> None:
    with pytest.raises(ClientError):
        expect_refusal(lambda: _raise(error), "a missing object is a broken lesson")


def test_client_side_mistakes_are_not_refusals() -> None:
    from botocore.exceptions import EndpointConnectionError, ParamValidationError

    from securepipe.errors import DatasetError

    for error in (ParamValidationError(report="bad parameter"),
                  EndpointConnectionError(endpoint_url="https://x"), DatasetError("missing")):
        with pytest.raises(type(error)):
            expect_refusal(lambda e=error: _raise(e), "not a refusal")


def test_emulation_mark_is_the_enforcers() -> None:
    from securepipe.sandbox import emulation as enforcement

    assert EMULATION_MARK == enforcement.EMULATION
