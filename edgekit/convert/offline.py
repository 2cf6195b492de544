"""No network while a model is built or loaded: an attempt is stopped and named in one line.

Factories of torchvision, timm or a user's package may download weights when called with their
defaults (``weights_backbone=IMAGENET1K_V1``). edgekit never downloads anything: :func:`offline`
blocks name lookups and connections for the duration of a call, remembers the attempt (whatever
the library makes of the refused connection, often a ``URLError`` far from its cause), and raises
:class:`~edgekit.errors.SourceError` naming the factory arguments that avoid it.
"""
from __future__ import annotations

__all__ = ["offline", "NetworkAttempt", "download_arguments"]

import inspect
import socket
from contextlib import contextmanager
from typing import Callable, Iterator

from edgekit.errors import SourceError

_HINT_WORDS = ("weights", "pretrained")


class NetworkAttempt(OSError):
    """Raised inside the guarded call in place of a connection (subclass of OSError, as sockets raise)."""


def download_arguments(factory: Callable) -> list[str]:
    """``name=value`` settings of ``factory``'s parameters that would turn off downloads, best first.

    A parameter whose name says weights or pretrained and whose default is not already off comes
    first (``weights_backbone=None``); the others follow.
    """
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return []
    on, off = [], []
    for p in params:
        if not any(w in p.name.lower() for w in _HINT_WORDS):
            continue
        value = "False" if "pretrained" in p.name.lower() and "weights" not in p.name.lower() else "None"
        default_off = p.default in (None, False, inspect.Parameter.empty)
        (off if default_off else on).append(f"{p.name}={value}")
    return on + off


@contextmanager
def offline(what: str, factory: Callable | None = None) -> Iterator[None]:
    """Run the body with the network blocked; an attempt becomes one SourceError.

    Args:
        what: the source as the user named it, for the message.
        factory: the callable being run, whose signature suggests the argument that avoids the download.
    """
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        target = args[0] if args else kwargs.get("host", "?")
        attempts.append(str(target[0] if isinstance(target, tuple) else target))
        raise NetworkAttempt(f"edgekit blocks network access while building a model (to {attempts[-1]})")

    def refuse_connect(sock, address, *args):
        return refuse(address)

    saved = (socket.getaddrinfo, socket.create_connection, socket.socket.connect, socket.socket.connect_ex)
    socket.getaddrinfo, socket.create_connection = refuse, refuse
    socket.socket.connect, socket.socket.connect_ex = refuse_connect, refuse_connect
    try:
        yield
    except Exception:
        if attempts:
            raise _attempt_error(what, factory, attempts[0]) from None
        raise
    finally:
        socket.getaddrinfo, socket.create_connection, socket.socket.connect, socket.socket.connect_ex = saved
    if attempts:  # the library swallowed the refusal: still not a model edgekit can vouch for
        raise _attempt_error(what, factory, attempts[0])


def _attempt_error(what: str, factory: Callable | None, host: str) -> SourceError:
    hints = download_arguments(factory) if factory is not None else []
    fix = (f"pass --factory-arg {hints[0]}" + (f" (also possible: {', '.join(hints[1:3])})" if len(hints) > 1 else "")
           if hints else "give it arguments that load no pretrained weights, and --checkpoint for yours")
    return SourceError(f"{what} tried to download (from {host}) while building the model; edgekit never "
                       f"downloads weights: {fix}")
