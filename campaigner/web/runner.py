"""Sends the web app runs, all in one event loop of their own (``api.SharedLoop``; each
run has a thread that waits for it), with a ``RunControl`` for Pause and Cancel, and the
latest progress kept for the run page.

Pause stops taking new rows (the requests in flight finish and are journaled); Resume is
``--resume`` of the same run folder, so a resumed run never sends a row twice. Which
runs this server was sending is kept in the workspace (their states are the journal's),
so that after a restart, even after kill -9, those runs continue."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from campaigner import api
from campaigner.cams import DEFAULT_ENDPOINT
from campaigner.errors import CampaignerError, RunCancelled, RunStopped
from campaigner.runs import destination
from campaigner.runstate import META_SCHEDULED_FOR, META_STATE, RunState
from campaigner.web.workspace import Workspace

__all__ = ("ActiveRun", "Runner")

log = logging.getLogger(__name__)

# Why a web run stopped -> its state; any other stop (server shutting down) leaves it
# "sending" in the workspace, so the next start resumes it.
_STOPS = {"paused": "paused", "cancelled": "cancelled"}
SERVER_STOPPING = "server stopping"
_HISTORY = 600  # progress points kept for the chart (one a second: ten minutes)


@dataclass
class ActiveRun:
    """A send this process started (or is starting)."""

    control: api.RunControl
    state: str = "sending"
    progress: api.SendProgress | None = None
    error: str | None = None
    notices: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    history: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=_HISTORY))
    finished: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    at: datetime | None = None  # a scheduled run: when it sends

    @property
    def waiting(self) -> bool:
        """Scheduled and still waiting for its time (nothing sent yet)."""
        return self.at is not None and self.progress is None and not self.finished.is_set()

    def on_progress(self, progress: api.SendProgress) -> None:
        self.progress = progress
        now = time.time()  # wall clock: the chart lines up sends and deliveries
        if not self.history or now - self.history[-1][0] >= 1.0:
            self.history.append((round(now, 1), progress.sent, progress.failed))

    def rate(self) -> float:
        """Messages per second over the last ten seconds or so."""
        if len(self.history) < 2:
            return 0.0
        recent = list(self.history)[-11:]
        (t0, s0, f0), (t1, s1, f1) = recent[0], recent[-1]
        return (s1 + f1 - s0 - f0) / (t1 - t0) if t1 > t0 else 0.0


class Runner:
    """The runs this server sends; ``recover`` resumes the ones a dead server left."""

    def __init__(self, workspace: Workspace, *, sandbox: bool, endpoint: str | None = None):
        self.workspace = workspace
        self.sandbox = sandbox
        self.endpoint = endpoint
        self._lock = threading.RLock()
        self._runs: dict[str, ActiveRun] = {}  # by run id, once the run folder exists
        self._starting: list[ActiveRun] = []
        self._once: dict[str, ActiveRun] = {}  # by draft: its one send
        self._loop = api.SharedLoop()

    def active(self, run_id: str) -> ActiveRun | None:
        with self._lock:
            return self._runs.get(run_id)

    def options(
        self,
        campaign_file: Path,
        input_path: Path | None,
        resume: Path | None = None,
        at: datetime | None = None,
    ) -> api.SendOptions:
        # yes: the user confirmed the figures on the preview page (an earlier run of the
        # same campaign and list is still refused: that takes `--again` on the CLI).
        return api.SendOptions(
            campaign_file,
            input_path,
            out=self.workspace.out,
            endpoint=self.endpoint or DEFAULT_ENDPOINT,
            yes=True,
            resume=resume,
            sandbox=self.sandbox,
            at=at,
        )

    def start(
        self,
        campaign_file: Path,
        input_path: Path | None,
        *,
        resume: Path | None = None,
        at: datetime | None = None,
        once_for: str | None = None,
    ) -> ActiveRun:
        """Start a send in a new thread; the caller waits on ``control.started`` to learn
        the run folder (or, once ``finished``, the error). With ``once_for`` (a draft), a
        send of it that is starting or started is returned instead of a second one."""
        options = self.options(campaign_file, input_path, resume, at)
        with self._lock:
            earlier = self._once.get(once_for) if once_for else None
            if earlier is not None and (
                earlier.control.run_dir is not None or not earlier.finished.is_set()
            ):
                return earlier
            run = self._launch(
                lambda run: api.send(
                    options,
                    run.on_progress,
                    say=run.notices.append,
                    control=run.control,
                    loop=self._loop,
                ),
                at=at,
            )
            if once_for:
                self._once[once_for] = run
            return run

    def retry(self, run_id: str) -> ActiveRun:
        """A new run of a run's failed rows with a retriable code (``campaigner retry``)."""
        info = self.workspace.info(run_id)
        if info is None:
            raise CampaignerError("no such run")
        run_dir = info.run_dir
        ours = destination(self.endpoint or DEFAULT_ENDPOINT, self.sandbox)
        if self.sandbox or info.meta.get("destination", ours) != ours:
            raise CampaignerError(
                f"this server sends to {ours} and this run sent to "
                f"{info.meta.get('destination')}: a retry sends only where the run did, and "
                "not from the sandbox (`campaigner retry RUN_DIR` on the command line)"
            )
        return self._launch(
            lambda run: api.retry(
                run_dir,
                progress=run.on_progress,
                endpoint=self.endpoint or DEFAULT_ENDPOINT,
                out=self.workspace.out,
                yes=True,
                say=run.notices.append,
                control=run.control,
                loop=self._loop,
            )
        )

    def resume(self, run_id: str) -> ActiveRun:
        """``--resume`` of a run folder, with the campaign file it recorded; a scheduled
        run keeps its time (when that has passed meanwhile, it sends now)."""
        info = self.workspace.info(run_id)
        if info is None:
            raise CampaignerError("no such run")
        active = self.active(run_id)
        if active is not None and not active.finished.is_set():
            raise CampaignerError("the run is sending already")
        ours = destination(self.endpoint or DEFAULT_ENDPOINT, self.sandbox)
        theirs = info.meta.get("destination")
        if theirs and theirs != ours:  # a sandbox run never goes on to CAMS, nor back
            raise CampaignerError(
                f"this run sent to {theirs} and this server sends to {ours}: resume it "
                f"from the command line (`campaigner send CAMPAIGN_FILE --resume "
                f"{info.run_dir}`{' --sandbox' if theirs == 'sandbox' else ''})"
            )
        campaign = info.meta.get("campaign_path")
        if not campaign or not Path(campaign).is_file():
            raise CampaignerError(
                f"the campaign file this run was started with ({campaign or 'none recorded'}) "
                "is gone; resume it from the command line with `campaigner send CAMPAIGN_FILE "
                f"--resume {info.run_dir}`"
            )
        at = None
        if info.meta.get(META_STATE) == RunState.SCHEDULED and info.meta.get(META_SCHEDULED_FOR):
            with suppress(ValueError):
                at = datetime.fromisoformat(info.meta[META_SCHEDULED_FOR])
            if at is not None and at <= datetime.now(at.tzinfo):
                at = None
        self.workspace.set_web_state(run_id, state="sending")
        return self.start(Path(campaign), None, resume=info.run_dir, at=at)

    def stop(self, run_id: str, reason: str) -> bool:
        """Pause or cancel a run this server sends (False: it sends no such run)."""
        run = self.active(run_id)
        if run is None or run.finished.is_set():
            return False
        self.workspace.set_web_state(run_id, state=_STOPS[reason])
        run.control.stop(reason)
        return True

    def _launch(
        self, call: Callable[[ActiveRun], api.SendResult], at: datetime | None = None
    ) -> ActiveRun:
        run = ActiveRun(api.RunControl(), at=at)
        with self._lock:
            self._starting.append(run)
        run.thread = threading.Thread(
            target=self._send, args=(run, call), name="campaigner-send", daemon=True
        )
        run.thread.start()
        return run

    def _send(self, run: ActiveRun, call: Callable[[ActiveRun], api.SendResult]) -> None:
        state, error = "done", None
        watcher = threading.Thread(target=self._register, args=(run,), daemon=True)
        watcher.start()
        try:
            result = call(run)
            if result.stop_reason is not None:
                state = _STOPS.get(result.stop_reason, "stopped")
        except RunCancelled as exc:
            state, error = "cancelled", str(exc)
        except RunStopped as exc:
            state, error = "stopped", str(exc)
        except CampaignerError as exc:
            state, error = "stopped", str(exc)
        except Exception as exc:  # a bug: the run page says so, the server goes on
            log.exception("the send failed")
            state, error = "stopped", f"internal error: {type(exc).__name__}"
        run.error = error
        run.state = state
        run.finished.set()
        run.control.started.set()  # wakes whoever waits for the run folder
        if run.control.run_dir is not None and run.control.reason != SERVER_STOPPING:
            self.workspace.set_web_state(run.control.run_dir.name, state=state, error=error)
        with self._lock:
            if run in self._starting:
                self._starting.remove(run)

    def _register(self, run: ActiveRun) -> None:
        run.control.started.wait()
        run_dir = run.control.run_dir
        if run_dir is None:
            return
        with self._lock:
            self._runs[run_dir.name] = run
            if run in self._starting:
                self._starting.remove(run)
        if not run.finished.is_set():
            self.workspace.set_web_state(run_dir.name, state="sending")

    def recover(self) -> list[str]:
        """Resume the runs a previous server was sending when it died (journal not
        finished, no lock held): by the ``--resume`` rules, nothing is sent twice."""
        resumed = []
        for run_id in self.workspace.run_ids():
            if self.workspace.web_state(run_id).get("state") != "sending":
                continue
            info = self.workspace.info(run_id)
            if info is None or info.state not in ("interrupted", "stopped"):
                continue  # done, cancelled, paused, or another process has it
            try:
                self.resume(run_id)
            except CampaignerError as exc:
                self.workspace.set_web_state(run_id, state="stopped", error=str(exc))
                continue
            resumed.append(run_id)
        return resumed

    def shutdown(self, timeout_s: float = 60.0) -> None:
        """Stop every run gracefully (the requests in flight finish); they stay 'sending'
        in the workspace, so the next start resumes them. A scheduled run still waiting is
        left alone (a stop would cancel it): it ends with the process and keeps its time."""
        with self._lock:
            runs = [r for r in (*self._runs.values(), *self._starting) if not r.waiting]
        for run in runs:
            run.control.stop(SERVER_STOPPING)
        deadline = time.monotonic() + timeout_s
        for run in runs:
            run.finished.wait(max(deadline - time.monotonic(), 0.0))
        with self._lock:
            idle = all(r.finished.is_set() for r in (*self._runs.values(), *self._starting))
        if idle:  # a scheduled run still waits in the loop: it ends with the process
            self._loop.close()
