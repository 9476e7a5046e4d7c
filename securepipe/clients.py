"""One low-level client per session and service for the kit's own calls.

The kit's functions take a boto3 session, so the same code runs on a real account and in the
sandbox. Making a client from it each time costs 5-10 ms of CPU (botocore resolves the
configuration, builds the endpoint rules and copies the session's event handlers), which a
call such as ``upload_sample`` or an erasure's signature paid on every use: a scorecard made
about 250 clients. :func:`shared_client` makes one per session and service and hands it back
afterwards.

Low-level clients are safe to share between threads
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/clients.html#multithreading-or-multiprocessing-with-clients).
A client copies its session's event handlers when it is made, so a handler registered on the
session later (a test's fault injection, a recorder attached to an existing session) would not
reach a client made before it. A shared client is therefore handed back only while the
session's handlers are unchanged since it was made, and replaced otherwise: botocore replaces
its emitter's lookup cache on every registration and removal, and that object is the stamp
compared. A session whose emitter does not look like that gets a new client every time.
A shared client is never given event handlers of its own: code that registers one on a client
makes a client of its own (``session.client``), so what it adds reaches no other caller.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["shared_client"]

_lock = threading.Lock()
#: session -> service name -> (client, the session's handler stamp when it was made); an entry
#: goes with its session.
_clients: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, object]]] = (
    weakref.WeakKeyDictionary())


def _handler_stamp(session: Any) -> object | None:
    """An object botocore replaces whenever a handler is registered on (or removed from) the
    session's emitter; ``None`` if the session is not built that way (then nothing is shared)."""
    core = getattr(session, "_session", None)
    get_component = getattr(core, "get_component", None)
    if get_component is None:
        return None
    try:
        emitter = get_component("event_emitter")
    except Exception:                   # not a botocore session after all: share nothing
        return None
    stamp = getattr(getattr(emitter, "_emitter", emitter), "_lookup_cache", None)
    return stamp if isinstance(stamp, dict) else None


def shared_client(session: Any, service: str) -> Any:
    """``session.client(service)``, made once per session and service while the session's
    event handlers stay as they were (see the module docstring; never register event handlers
    on what this returns).
    https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html#boto3.session.Session.client
    """
    if _handler_stamp(session) is None:
        return session.client(service)
    with _lock:
        per_session = _clients.get(session)
        if per_session is None:
            per_session = _clients[session] = {}
        held = per_session.get(service)
        if held is not None and held[1] is _handler_stamp(session):
            return held[0]
        client = session.client(service)
        # the stamp as the client left it (making a client may itself register on the session)
        per_session[service] = (client, _handler_stamp(session))
        return client
