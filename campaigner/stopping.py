"""Stopping a send on SIGINT/SIGTERM: the first signal stops gracefully (in-flight
messages finish, the report is written), a second one aborts."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import anyio

from campaigner.send.pool import SendPool

__all__ = ("RunControl", "StopSignals", "watch_signals")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM over a whole send run: the first asks for a graceful stop, another
    aborts at once.

    While rows are sent, anyio's receiver (``watch_signals``) does this. When it exits,
    anyio puts back Python's defaults, not the caller's handlers: SIGTERM would end the
    process without a word and SIGINT raise wherever the report rebuild happens to be.
    ``take_over`` keeps the same two steps from then on; ``restore`` gives the caller its
    handlers back when the run ends.
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._previous = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
        self._abortable = False
        self.received: list[str] = []  # signal names, in order
        # Only the main thread may set handlers; a send in another thread (the web app's)
        # is stopped through a RunControl instead.
        self._main = threading.current_thread() is threading.main_thread()

    def take_over(self) -> None:
        if not self._main:
            return
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def allow_abort(self) -> None:
        """From here on no event loop runs under us: another signal may raise right away."""
        self._abortable = True
        if len(self.received) > 1:
            raise KeyboardInterrupt(self.received[-1])

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if len(self.received) > 1:
            if self._abortable:
                raise KeyboardInterrupt(name)
            return  # raised by allow_abort, out of the event loop's machinery
        with suppress(Exception):  # a handler must not break the write it interrupted
            self._say(f"{name}: finishing the report, then stopping (press Ctrl-C again to abort)")

    def restore(self) -> None:
        if not self._main:
            return
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)


async def watch_signals(
    pool: SendPool, abort: anyio.CancelScope, say: Callable[[str], None], stop: StopSignals
) -> None:
    """While rows are sent: a first signal stops the pool gracefully (no new rows, the ones
    in flight finish), a second cancels ``abort``. Then ``stop`` takes over."""
    try:
        with anyio.open_signal_receiver(*_STOP_SIGNALS) as signals:
            async for signum in signals:
                stop.received.append(signal.Signals(signum).name)
                if not pool.stopping:
                    name = signal.Signals(signum).name
                    say(
                        f"{name}: stopping — no new rows; waiting for messages in flight "
                        "(press Ctrl-C again to abort now)"
                    )
                    pool.stop(name)
                else:
                    say("aborting now: messages in flight become 'unknown'")
                    pool.abort()
                    abort.cancel()
                    return
    finally:
        stop.take_over()


class RunControl:
    """Stopping a send from another thread (the web app's Pause and Cancel), honoured like
    a first signal: no new rows start, requests in flight finish and are journaled.

    ``run_dir`` is set (and ``started`` fires) once the run folder exists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._stop: Callable[[str], None] | None = None
        self.run_dir: Path | None = None
        self.started = threading.Event()

    @property
    def reason(self) -> str | None:
        """Why a stop was asked for (None: it was not)."""
        return self._reason

    def stop(self, reason: str) -> None:
        """Ask the send to stop; safe from any thread, before or during the send."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
            stop = self._stop
        if stop is not None:
            stop(reason)

    def attach_run(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.started.set()

    async def watch(self, pool: SendPool) -> None:
        """While rows are sent: hand a stop asked for from any thread to ``pool``."""
        loop = asyncio.get_running_loop()

        def stop(reason: str) -> None:
            with suppress(RuntimeError):  # the loop has closed: the send is over anyway
                loop.call_soon_threadsafe(pool.stop, reason)

        with self._lock:
            self._stop = stop
            reason = self._reason
        if reason is not None:
            pool.stop(reason)
        try:
            await anyio.sleep_forever()
        finally:
            with self._lock:
                self._stop = None
