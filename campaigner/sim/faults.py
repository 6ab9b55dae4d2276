"""How a simulator behaves: the faults it injects (``FaultPlan``) and its configuration.

What each fault does on the wire is described in docs/simulator.md#faults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from campaigner.limits import MAX_QPS
from campaigner.sim.fate import ReceiptPlan

__all__ = (
    "BEFORE_ACCEPT",
    "REFUSE",
    "Fault",
    "FaultPlan",
    "FaultWindow",
    "SimulatorConfig",
)

# An outage window's fault name: the listening socket is closed for the window.
REFUSE = "refuse"


class Fault(StrEnum):
    """Faults the simulator can inject into SendChatappMessage answers."""

    UNAVAILABLE_503 = "unavailable_503"  # not accepted
    RESET_BEFORE = "reset_before"  # not accepted; connection reset, no answer
    THROTTLE = "throttle"  # not accepted; 400 System.LimitControl
    RESET_AFTER = "reset_after"  # accepted; connection reset, no answer
    TIMEOUT_AFTER = "timeout_after"  # accepted; no answer until hang_s or shutdown
    ERROR_500_AFTER = "error_500_after"  # accepted; 500 InternalError
    MALFORMED_200 = "malformed_200"  # accepted; 200 with an unusable body


# Faults answered instead of accepting the send; the others apply after acceptance.
BEFORE_ACCEPT = frozenset({Fault.UNAVAILABLE_503, Fault.RESET_BEFORE, Fault.THROTTLE})
_FAULT_NAMES = frozenset(f.value for f in Fault)


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """``fault`` (a ``Fault`` name or ``"refuse"``) applies to ``rate`` of the requests that
    arrive in ``[start_s, start_s + duration_s)`` after the server started."""

    start_s: float
    duration_s: float
    fault: str = REFUSE
    rate: float = 1.0

    def covers(self, elapsed_s: float) -> bool:
        """Whether ``elapsed_s`` (seconds since the server started) falls in the window."""
        return 0 <= elapsed_s - self.start_s < self.duration_s


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject. Per request at most one fault applies, first match wins:
    an active window, then ``every`` (fault on every Nth request), then ``rates``
    (seeded random draw, cumulative in ``Fault`` declaration order)."""

    rates: Mapping[str, float] = field(default_factory=dict)
    every: Mapping[str, int] = field(default_factory=dict)
    fail_recipients: Mapping[str, str] = field(default_factory=dict)
    windows: Sequence[FaultWindow] = ()
    hang_s: float = 60.0
    # Send x-acs-retry-after (milliseconds, as Darabonba reads it) with throttling answers.
    retry_after_ms: int | None = None

    def __post_init__(self) -> None:
        unknown = (set(self.rates) | set(self.every)) - _FAULT_NAMES
        unknown |= {w.fault for w in self.windows} - _FAULT_NAMES - {REFUSE}
        if unknown:
            raise ValueError(f"unknown fault names: {sorted(unknown)}")
        if any(r < 0 for r in self.rates.values()) or sum(self.rates.values()) > 1:
            raise ValueError("fault rates must be >= 0 and sum to at most 1")
        if any(n < 1 for n in self.every.values()):
            raise ValueError("'every' counts must be >= 1")

    def outages(self) -> list[FaultWindow]:
        """The ``refuse`` windows, earliest first."""
        return sorted((w for w in self.windows if w.fault == REFUSE), key=lambda w: w.start_s)

    def refusing_at(self, elapsed_s: float) -> bool:
        """Whether an outage closes the listener ``elapsed_s`` seconds after the start."""
        return any(w.covers(elapsed_s) for w in self.windows if w.fault == REFUSE)


def _default_credentials() -> dict[str, str]:
    return {"testAccessKeyId": "testAccessKeySecret"}


@dataclass
class SimulatorConfig:
    """Behaviour of one simulator instance; everything random derives from ``seed``.

    Latency: ``latency_ms`` plus seeded jitter, ``uniform`` on ``[0, jitter_ms]`` or
    ``lognormal`` with median ``jitter_ms`` and shape ``jitter_sigma`` (docs/simulator.md#latency).
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter: Literal["uniform", "lognormal"] = "uniform"
    jitter_sigma: float = 1.0
    seed: int = 0
    qps_limit: int = MAX_QPS  # the gateway's limit, as CAMS's
    credentials: Mapping[str, str] = field(default_factory=_default_credentials)
    faults: FaultPlan = field(default_factory=FaultPlan)
    business_error_status: int = 200
    max_skew_s: float = 900.0
    expired_security_tokens: frozenset[str] = frozenset()
    host_id: str = "cams.ap-southeast-1.aliyuncs.com"
    validate: bool = True
    # What happens after acceptance (receipts, ListChatappMessage states); None: every accepted
    # message stays "success" (sent) in listings and nothing is pushed.
    receipts: ReceiptPlan | None = None
