"""Test-only crash points: kill this process at an exact step of a row's life.

``CAMPAIGNER_CRASH_AT=<point>:<n>`` makes the n-th pass through ``<point>`` end the
process with SIGKILL, as a deploy, an OOM or a power cut would, so the crash tests can
prove what the journal promises at each step. Unset (always, outside tests), a crash
point costs one comparison.

Points: ``before_intent`` (rows checked, intent not yet committed), ``after_intent``
(intent committed, request not sent), ``after_send`` (the server has answered, the answer
is not read), ``after_answer`` (answer classified, outcome not committed),
``report_write`` (the report is half written), ``run_folder`` (a new run's journal holds its
campaign, the folder does not have its name yet).

``<point>:<n>:SIGINT,SIGTERM`` sends those signals instead (once, in order), so the signal
tests can hit a step as exactly as the crash tests do.
"""

from __future__ import annotations

import os
import signal

__all__ = ("POINTS", "crash_point")

POINTS = (
    "before_intent",
    "after_intent",
    "after_send",
    "after_answer",
    "report_write",
    "run_folder",
)


def _parse(spec: str | None) -> tuple[str, int, list[signal.Signals]] | None:
    if not spec:
        return None
    point, _, rest = spec.partition(":")
    count, _, names = rest.partition(":")
    if point not in POINTS:
        return None
    signals = [signal.Signals[n] for n in names.split(",")] if names else [signal.SIGKILL]
    return point, int(count or 1), signals


_ARMED = _parse(os.environ.get("CAMPAIGNER_CRASH_AT"))
_passes = 0


def crash_point(name: str) -> None:
    global _passes
    if _ARMED is None or _ARMED[0] != name:
        return
    _passes += 1
    if _passes == _ARMED[1]:
        for signum in _ARMED[2]:
            os.kill(os.getpid(), signum)
