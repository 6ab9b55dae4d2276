"""The simulated CAMS gateway's decisions: a received request in, an answer as plain values out
(``receive`` on arrival; ``answer`` for a ``Pending`` once its latency has passed). The pipeline
and its error codes: docs/simulator.md#pipeline."""

from __future__ import annotations

import hashlib
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern
from typing import Any, Literal

from campaigner import signing
from campaigner.cams import API_VERSION, LIST_ACTION, SEND_ACTION
from campaigner.send.pacing import max_in_window
from campaigner.sim.auth import THROTTLED, Caller, Gatekeeper
from campaigner.sim.exchange import (
    MESSAGE_500,
    MESSAGE_503,
    MESSAGE_LIMIT,
    Answer,
    Hang,
    Reply,
    Request,
    Reset,
    error_reply,
    json_reply,
    malformed_reply,
)
from campaigner.sim.faults import BEFORE_ACCEPT, REFUSE, Fault, SimulatorConfig
from campaigner.sim.listing import ListError, list_messages
from campaigner.sim.records import AcceptedLog, AcceptedSend

__all__ = ("Pending", "Simulator")


@dataclass(frozen=True, slots=True)
class Pending:
    """An answer due after ``delay_s`` (the drawn latency): hand it back to ``Simulator.answer``.

    The send, if accepted, is already in the log: a client that times out meanwhile was served.
    """

    delay_s: float
    kind: Literal["list", "fault", "invalid", "accepted"]
    params: Mapping[str, str] = field(default_factory=dict)
    fault: Fault | None = None
    problem: tuple[str, str] | None = None  # (Code, Message) of a refused send
    record: AcceptedSend | None = None


class Simulator:
    """State and decisions of one fake CAMS; serve it with ``sim.server`` or ``sim.mock``.

    ``accepted`` lists every accepted send in order; ``arrivals`` the monotonic arrival time of
    every SendChatappMessage request, whatever its outcome.
    """

    def __init__(self, config: SimulatorConfig | None = None, *, log_path: Path | None = None):
        self.config = config or SimulatorConfig()
        self.accepted: list[AcceptedSend] = []
        self.arrivals: list[float] = []
        self.outcomes: Counter[str] = Counter()  # final answer kind → count (all actions)
        self.faults_injected: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()  # error Code → count
        self.log = AcceptedLog(log_path) if log_path is not None else None
        # Called with each accepted send after it is logged (the receipt pusher's schedule).
        self.on_accept: list[Callable[[AcceptedSend], None]] = []
        seed = self.config.seed
        # Separate streams so that, e.g., latency draws never shift which request gets a fault.
        self._fault_rng = random.Random(f"{seed}/faults")
        self._window_rng = random.Random(f"{seed}/windows")
        self._latency_rng = random.Random(f"{seed}/latency")
        self._id_rng = random.Random(f"{seed}/ids")
        self._seq = 0
        self._message_counter = 0
        self._by_to: dict[str, list[AcceptedSend]] = {}
        self._gatekeeper = Gatekeeper(self.config)
        self._epoch = time.monotonic()

    # ------------------------------------------------------------------ clock and figures

    @property
    def epoch(self) -> float:
        """When the simulator started serving (monotonic); fault windows count from it."""
        return self._epoch

    def restart_clock(self) -> None:
        """Start the fault windows' clock now (a server calls it once it listens)."""
        self._epoch = time.monotonic()

    @property
    def throttled(self) -> int:
        """Requests answered with System.LimitControl (flow control plus injected throttles)."""
        return self.rejections["System.LimitControl"]

    def received_count(self, to: str) -> int:
        """How many sends to this recipient were accepted."""
        return len(self._by_to.get(to, ()))

    def max_in_window(self, window_s: float = 1.0, *, accepted_only: bool = False) -> int:
        """Most SendChatappMessage requests (or accepted sends) in any ``[t, t + window_s)``."""
        times = (
            sorted(r.received_monotonic for r in self.accepted) if accepted_only else self.arrivals
        )
        return max_in_window(times, window_s)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": len(self.arrivals),
            "accepted": len(self.accepted),
            "throttled": self.throttled,
            "outcomes": dict(self.outcomes),
            "rejections": dict(self.rejections),
            "faults_injected": dict(self.faults_injected),
            "max_in_window": self.max_in_window(),
            "max_accepted_in_window": self.max_in_window(accepted_only=True),
            "qps_limit": self.config.qps_limit,
        }

    def accepted_lines(self) -> str:
        """Every accepted send as JSON lines, the same records as the log file."""
        return "".join(r.to_line() for r in self.accepted)

    def flush(self, *, fsync: bool = True) -> None:
        """Push the accepted log to the OS (it is flushed per line anyway) and optionally disk."""
        if self.log is not None:
            self.log.flush(fsync=fsync)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    # ------------------------------------------------------------------ decisions

    def receive(self, request: Request, *, refusing: bool = False) -> Reply | Pending:
        """Decide on an arrived request: an immediate reply, or what to answer after the latency.

        ``refusing``: the listener is closed for an outage, so a request on an already-open
        keep-alive connection is drained with 503 + ``Connection: close`` without accepting.
        """
        headers = request.first_headers()
        action = headers.get("x-acs-action", "")
        if action == SEND_ACTION:
            self.arrivals.append(request.arrived)
        if refusing:
            return self._error(503, "ServiceUnavailable", MESSAGE_503, gateway=False, close=True)
        if not action:
            return self._error(
                400,
                "MissingParameter",
                'The input parameter "Action" that is mandatory for processing this request '
                "is not supplied.",
            )
        if action not in (SEND_ACTION, LIST_ACTION):
            return self._error(
                404,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
            )
        if headers.get("x-acs-version") != API_VERSION:
            return self._error(400, "InvalidVersion", "Specified parameter Version is not valid.")
        caller = self._gatekeeper.check(request, headers, action)
        if caller is THROTTLED:
            return self._throttled()
        if not isinstance(caller, Caller):
            return self._error(caller.status, caller.code, caller.message)
        delay = self._draw_delay()
        if action == LIST_ACTION:
            return Pending(delay, "list", params=caller.params)
        self._seq += 1
        fault = self._pick_fault(self._seq, request.arrived)
        if fault in BEFORE_ACCEPT:
            self.faults_injected[fault] += 1
            return Pending(delay, "fault", fault=fault)
        problem = self._validate(caller.params)
        if problem is not None:
            return Pending(delay, "invalid", problem=problem)
        record = self._accept(caller, request, fault)
        return Pending(delay, "accepted", fault=fault, record=record)

    def answer(self, pending: Pending) -> Answer:
        """The answer to a ``Pending`` request, once its latency has passed."""
        if pending.kind == "list":
            return self._list(pending.params)
        if pending.kind == "fault":
            if pending.fault == Fault.RESET_BEFORE:
                return self._reset("reset_before")
            if pending.fault == Fault.UNAVAILABLE_503:
                return self._error(503, "ServiceUnavailable", MESSAGE_503, gateway=False)
            return self._throttled()
        if pending.kind == "invalid":
            assert pending.problem is not None
            code, message = pending.problem
            status = self.config.business_error_status
            if status >= 400:
                return self._error(status, code, message)
            self.rejections[code] += 1
            self.outcomes["business_error"] += 1
            rid = self._request_id()
            return json_reply(status, {"RequestId": rid, "Code": code, "Message": message}, rid)
        record, fault = pending.record, pending.fault
        assert record is not None
        if fault is None:
            self.outcomes["accepted"] += 1
            body = {
                "RequestId": record.request_id,
                "Code": "OK",
                "Message": "OK",
                "MessageId": record.message_id,
            }
            return json_reply(200, body, record.request_id)
        self.faults_injected[fault] += 1
        if fault == Fault.RESET_AFTER:
            return self._reset("reset_after")
        if fault == Fault.TIMEOUT_AFTER:
            self.outcomes["timeout_after"] += 1
            return Hang("timeout_after", self.config.faults.hang_s)
        if fault == Fault.ERROR_500_AFTER:
            return self._error(500, "InternalError", MESSAGE_500, request_id=record.request_id)
        return malformed_reply(self._message_counter % 3, record.request_id, record.message_id)

    def _pick_fault(self, seq: int, now: float) -> Fault | None:
        plan = self.config.faults
        draw = self._fault_rng.random()  # always one draw per request: keeps the stream aligned
        elapsed = now - self._epoch
        for window in plan.windows:
            if window.fault != REFUSE and window.covers(elapsed):
                if window.rate >= 1 or self._window_rng.random() < window.rate:
                    return Fault(window.fault)
        for name, n in plan.every.items():
            if seq % n == 0:
                return Fault(name)
        total = 0.0
        for fault in Fault:
            total += plan.rates.get(fault.value, 0.0)
            if draw < total:
                return fault
        return None

    def _validate(self, params: Mapping[str, str]) -> tuple[str, str] | None:
        to = params.get("To", "")
        if self.config.validate:
            # Imported here: the rules module is only needed once requests are being served.
            from campaigner.channels import check_call, check_recipient

            problems = check_call(params)
            if problems:
                return problems[0].code, problems[0].message
            channel = params.get("ChannelType", "")
            found = check_recipient(channel, to, params.get("RecipientType")) if to else None
            if found is not None:
                return found.code, found.message
        code = self.config.faults.fail_recipients.get(to)
        if code is not None:
            return code, f"Simulated business error for this recipient ({code})."
        return None

    def _draw_delay(self) -> float:
        cfg = self.config
        extra = 0.0
        if cfg.jitter_ms > 0:
            if cfg.jitter == "lognormal":
                extra = self._latency_rng.lognormvariate(math.log(cfg.jitter_ms), cfg.jitter_sigma)
            else:
                extra = self._latency_rng.uniform(0.0, cfg.jitter_ms)
        return max(0.0, cfg.latency_ms + extra) / 1000.0

    def _accept(self, caller: Caller, request: Request, fault: Fault | None) -> AcceptedSend:
        params = caller.params
        self._message_counter += 1
        # 24 hex chars like the documented example; the counter makes it unique per instance.
        message_id = f"{self._id_rng.getrandbits(64):016x}{self._message_counter:08x}"
        opt = params.get
        record = AcceptedSend(
            message_id=message_id,
            request_id=self._request_id(),
            to=params.get("To", ""),
            from_=intern(params.get("From", "")),
            channel_type=intern(params.get("ChannelType", "")),
            type=intern(params.get("Type", "")),
            template_code=opt("TemplateCode"),
            language=opt("Language"),
            message_type=opt("MessageType"),
            task_id=opt("TaskId"),
            access_key_id=caller.access_key_id,
            params_hash=hashlib.sha256(signing.canonical_query(params).encode()).hexdigest(),
            received_monotonic=request.arrived,
            received_wall=request.arrived_wall,
            fault=fault.value if fault is not None else None,
        )
        self.accepted.append(record)
        self._by_to.setdefault(record.to, []).append(record)
        if self.log is not None:
            self.log.write(record)  # flushed before the answer: what recipients really got
        for listener in self.on_accept:
            listener(record)
        return record

    def _list(self, params: Mapping[str, str]) -> Reply:
        found = list_messages(
            params, self.accepted, self._by_to, self.config.receipts, self.config.seed, time.time()
        )
        if isinstance(found, ListError):
            return self._error(found.status, found.code, found.message)
        rid = self._request_id()
        self.outcomes["listed"] += 1
        body = {"RequestId": rid, "Code": "OK", "Message": "OK", "Success": True, "Data": found}
        return json_reply(200, body, rid)

    def _request_id(self) -> str:
        return str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4)).upper()

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        *,
        gateway: bool = True,
        close: bool = False,
        request_id: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Reply:
        rid = request_id or self._request_id()
        self.rejections[code] += 1
        self.outcomes[f"http_{status}"] += 1
        host_id = self.config.host_id
        return error_reply(
            status, code, message, rid, host_id, gateway=gateway, close=close, extra=extra
        )

    def _throttled(self) -> Reply:
        retry_after = self.config.faults.retry_after_ms
        extra = {"x-acs-retry-after": str(retry_after)} if retry_after else None
        return self._error(400, "System.LimitControl", MESSAGE_LIMIT, extra=extra)

    def _reset(self, kind: str) -> Reset:
        self.outcomes[kind] += 1
        return Reset(kind)
