"""What every exercise module shares: the :class:`Exercise` record and the example account."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from securepipe.provision.layout import AccountLayout

#: The example account's raw bucket, data key, signing key and contractor session.
BUCKET = "securepipe-raw-123456789012-eu-west-1"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
SIGNING_KEY = KEY_ARN.replace("5555", "7777")
ROLE = "arn:aws:sts::123456789012:assumed-role/securepipe-contractor/c01"


@dataclass(frozen=True)
class Exercise:
    """One task: what to do, where to start, and how to judge an answer."""

    id: str
    lesson: str
    task: str
    starter: Callable[[], Any]
    judge: Callable[[Any], list[str]]


def kit_layout() -> AccountLayout:
    """The example account's layout, with its three keys (what kit_role_policy needs)."""
    from securepipe.provision.layout import AccountLayout

    return AccountLayout("123456789012", "eu-west-1", data_key_arn=KEY_ARN,
                         archive_key_arn=KEY_ARN.replace("5555", "6666"),
                         signing_key_arn=SIGNING_KEY)
