"""One low-level client per session and service for the kit's own calls.

The kit's functions take a boto3 session, so the same code runs on a real account and in the
sandbox. Making a client from it each time costs 5-10 ms of CPU (botocore resolves the
configuration, builds the endpoint rules and copies the session's event handlers), which a
call such as ``upload_sample`` or an erasure's signature paid on every use: lesson 06 made
about 250 clients. :func:`shared_client` makes one per session and service and hands it back
afterwards, kept on the session object itself (it goes when the session goes).

A client takes what its session holds when it is made: the event handlers (copied), the
credentials, the default client configuration and the region. So a shared client is handed
back only while all four are as they were just before it was made, and replaced otherwise: a
handler registered later (a test's fault injection, a recorder attached to an existing
session), credentials set or found later (botocore looks again on each new client while it has
none, so nothing is kept until it finds some), a default configuration set for a while (the
scorecard's retries and timeouts) or another region all reach the kit's next call, as they
would reach a new client. Handlers are compared by an object botocore replaces on every
registration and removal (its emitter's lookup cache); a session not built that way gets a new
client every time. Changes made by hand to botocore's private state, or to ``AWS_*``
variables once credentials were found, are not seen (nor by botocore's own clients).

Low-level clients are safe to share between threads
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/clients.html#multithreading-or-multiprocessing-with-clients).
A shared client is never given event handlers, nor wrapped in a ``botocore.stub.Stubber``
(which would answer every caller's calls while active): code that does either makes a client of
its own with ``session.client``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["shared_client"]

#: The attribute the cache is kept under on each session.
_ATTR = "_securepipe_shared_clients"


@dataclass
class _Cache:
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: service -> (client, the session's state just before the client was made)
    clients: dict[str, tuple[Any, tuple[Any, ...]]] = field(default_factory=dict)


def _state(session: Any) -> tuple[Any, ...] | None:
    """What a new client would take from ``session``: its handler stamp, credentials, default
    client configuration and region; ``None`` if it cannot be told (nothing is then shared)."""
    core: Any = getattr(session, "_session", None)
    if not callable(getattr(core, "get_component", None)):
        return None
    try:
        emitter = core.get_component("event_emitter")
        credentials = core.get_credentials()
        config = core.get_default_client_config()
        region = core.get_config_variable("region")
    except Exception:            # not a botocore session after all: share nothing
        return None
    stamp = getattr(getattr(emitter, "_emitter", emitter), "_lookup_cache", None)
    if not isinstance(stamp, dict) or credentials is None:
        return None
    return stamp, credentials, config, region


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return a[0] is b[0] and a[1] is b[1] and a[2] is b[2] and a[3] == b[3]


def shared_client(session: Any, service: str) -> Any:
    """``session.client(service)``, made once per session and service while what the client
    took from the session is unchanged (see the module docstring; never register event
    handlers on what this returns).
    https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html#boto3.session.Session.client
    """
    state = _state(session)
    if state is None:
        return session.client(service)
    try:
        cache: _Cache = vars(session).setdefault(_ATTR, _Cache())
    except TypeError:               # no instance dictionary: nowhere to keep it
        return session.client(service)
    with cache.lock:                # re-entrant: a client-creation hook may call the kit
        held = cache.clients.get(service)
        if held is not None and _same(held[1], state):
            return held[0]
        client = session.client(service)
        # the state read before it was made: a change while it was being made replaces it
        cache.clients[service] = (client, state)
        return client
