"""Stop signals for command-line programs: Ctrl-C (SIGINT), `kill` or a container stop (SIGTERM)
and a closed terminal (SIGHUP) all mean "stop, keep what is done". The first one is a request the
work honours at a safe point (between two frames); a second one stops at once. Either way an
output being written is never left as a hidden temporary file.

    with stop_on_signals() as stop:      # for the whole command, in the main thread
        ...                              # long work checks stop.requested or calls stop.check()

The library leaves the process's handlers alone unless asked (Pipeline.run(handle_signals=True)
uses this module); nested uses share the outer one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

# The signals that ask streamdn to stop, where the platform has them (Windows lacks SIGHUP).
STOP_SIGNALS: tuple[int, ...] = tuple(
    int(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def signal_name(signum: int | None) -> str:
    """'SIGTERM' for 15; 'Ctrl-C' for SIGINT (what the user pressed); 'a signal' for None."""
    if signum is None:
        return "a signal"
    if signum == signal.SIGINT:
        return "Ctrl-C"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """A stop signal ended the work. A KeyboardInterrupt, so that everything that already cleans
    up after Ctrl-C (sinks keep their .partial output) does the same for SIGTERM and SIGHUP.

    Attributes:
        signum: the signal (signal.SIGINT, SIGTERM, SIGHUP), or None when unknown.
    """

    def __init__(self, signum: int | None = None) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def signum_of(err: BaseException) -> int | None:
    """The signal behind a KeyboardInterrupt: its signum when it is Interrupted, else SIGINT."""
    return err.signum if isinstance(err, Interrupted) else int(signal.SIGINT)


class StopRequest:
    """What the handlers saw: `requested` after the first stop signal, `signum` the first one."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self.count = 0
        self._shield = 0
        self._pending: int | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        """Raises Interrupted when a stop was requested (call it at safe points)."""
        if self.event.is_set():
            raise Interrupted(self.signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum
        first = not self.event.is_set()
        self.event.set()
        if first:
            return
        if self._shield:
            self._pending = signum   # raised when the protected section ends
            return
        raise Interrupted(signum)


_ACTIVE: StopRequest | None = None
_LOCK = threading.Lock()


def active() -> StopRequest | None:
    """The StopRequest of the enclosing stop_on_signals block, or None."""
    return _ACTIVE


@contextlib.contextmanager
def stop_on_signals(enabled: bool = True) -> Iterator[StopRequest]:
    """Handles SIGINT, SIGTERM and SIGHUP for the duration of the block (main thread only): the
    first one sets the request (`stop.requested`, `stop.event`), a second one raises Interrupted
    wherever the main thread is. The previous handlers are restored on the way out.

    Inside another stop_on_signals block it yields that block's request and changes nothing. When
    not `enabled`, or off the main thread (where Python cannot install handlers), it yields a
    request no signal will set and leaves the handlers alone.
    """
    global _ACTIVE
    if _ACTIVE is not None:
        yield _ACTIVE
        return
    request = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous: dict[int, Any] = {}
    with _LOCK:
        try:
            for signum in STOP_SIGNALS:
                previous[signum] = signal.signal(signum, request._handle)
        except (ValueError, OSError):   # an embedding that forbids handlers: leave them alone
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            previous = {}
        _ACTIVE = request if previous else None
    try:
        yield request
    finally:
        with _LOCK:
            if previous:
                _ACTIVE = None
                for signum, handler in previous.items():
                    signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def protected() -> Iterator[None]:
    """A short section a second signal must not cut in half (removing or renaming a temporary
    file): inside stop_on_signals a signal that arrives meanwhile is raised when the section ends.
    Outside it this does nothing."""
    request = _ACTIVE
    if request is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    request._shield += 1
    try:
        yield
    finally:
        request._shield -= 1
        if not request._shield and request._pending is not None:
            signum, request._pending = request._pending, None
            raise Interrupted(signum)
