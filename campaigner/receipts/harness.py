"""``campaigner receive`` as a child process, for tests and benches: started on a free port
(announced on its first stdout line), stopped by a signal or killed."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ("ReceiverProcess",)

_LISTENING = re.compile(rb"Receiving on http://[^ ]+:(\d+)/")


@dataclass
class ReceiverProcess:
    """One ``campaigner receive`` child: ``port`` 0 picks a free one."""

    workspace: Path
    token: str
    port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None

    def __enter__(self) -> ReceiverProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 60.0) -> ReceiverProcess:
        env = {**os.environ, "CAMPAIGNER_CALLBACK_TOKEN": self.token, **self.extra_env}
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.workspace / f"receiver-{time.monotonic_ns()}.err"
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(  # noqa: S603 (this interpreter, our arguments)
                [
                    sys.executable,
                    "-m",
                    "campaigner",
                    "receive",
                    "--port",
                    str(self.port),
                    "--out",
                    str(self.workspace),
                    *self.extra_args,
                ],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.kill()
                    raise RuntimeError(f"campaigner receive did not start: {self.errors()}")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"campaigner receive exited: {self.errors()}")
                line += chunk
        found = _LISTENING.search(line)
        if found is None:
            self.kill()
            raise RuntimeError(f"unexpected first line from campaigner receive: {line!r}")
        self.port = int(found.group(1))
        return self

    def errors(self) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")[-4000:]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, kind: str = "status") -> str:
        return f"{self.base_url}/cams/{kind}/{self.token}"

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM, then the exit code (SIGKILL if it does not exit in time)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode
