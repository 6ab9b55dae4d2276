"""Real processes for tests and benches: ``campaigner sandbox`` as a child (``Sandbox``) and
``campaigner`` commands run or started as children with the simulator's key pair.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = (
    "CREDENTIALS",
    "KEY_ID",
    "SECRET",
    "Sandbox",
    "campaigner",
    "free_port",
    "run",
    "send_args",
)

# The simulator's default key pair, and the environment that hands it to `campaigner`.
KEY_ID, SECRET = "testAccessKeyId", "testAccessKeySecret"
CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sandbox:
    """`campaigner sandbox` in a child process, on a free port; ``extra`` are more options,
    ``env`` more environment variables."""

    log: Path | None = None
    latency_ms: float = 20
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def start(self) -> Sandbox:
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "campaigner",
            "sandbox",
            "--port",
            str(self.port),
            "--latency-ms",
            str(self.latency_ms),
            *(["--log", str(self.log)] if self.log is not None else []),
            *self.extra,
        ]
        # This interpreter running campaigner with options built here: no untrusted input.
        quiet = subprocess.DEVNULL
        env = os.environ | self.env
        self.proc = subprocess.Popen(cmd, stdout=quiet, stderr=quiet, env=env)  # noqa: S603
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self._get("/_sim/stats", timeout=2)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("simulator did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _get(self, path: str, timeout: float = 10) -> bytes:
        # Always http://127.0.0.1:PORT: no file: or other schemes can reach urlopen.
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:  # noqa: S310
            data: bytes = r.read()
            return data

    def stats(self) -> dict[str, object]:
        """The child's ``/_sim/stats`` counters."""
        return dict(json.loads(self._get("/_sim/stats")))

    def accepted(self) -> list[dict[str, object]]:
        """The child's accepted sends (``/_sim/accepted``) as JSON objects."""
        return [
            json.loads(line) for line in self._get("/_sim/accepted").decode().splitlines() if line
        ]

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


def campaigner(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m campaigner ARGS`` with the simulator's key pair in its environment."""
    return subprocess.Popen(  # noqa: S603 (this interpreter, the caller's own arguments)
        [sys.executable, "-m", "campaigner", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | CREDENTIALS | (env or {}),
    )


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> tuple[int, str, str]:
    """Run ``python -m campaigner ARGS`` to the end: (exit code, stdout, stderr)."""
    proc = campaigner(*args, env=env)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def send_args(
    campaign: Path, out: Path, url: str, resume: Path | None, *, again: bool = False
) -> list[str]:
    """``again``: a new run of a campaign and list that an earlier run already sent."""
    args = ["send", str(campaign), "--endpoint", url, "--out", str(out), "--yes", "--json"]
    if resume:
        return [*args, "--resume", str(resume)]
    return [*args, "--again"] if again else args
