"""A faithful fake of CAMS ``SendChatappMessage`` (and ``ListChatappMessage``) on 127.0.0.1.

A real HTTP/1.1 server (aiohttp.web) that checks what the official SDK sends (docs/wire-format.md)
and answers like the gateway does. It keeps the "server-side receipts": every **accepted** send
is appended to ``Simulator.accepted`` (and to an optional JSON-lines file, written and flushed
*before* the answer goes out), so crash tests can compare the client's report with what the
recipients really received.

Request pipeline (``POST /`` or ``GET /``, every parameter in the query, empty body):

1. ``x-acs-action`` must be ``SendChatappMessage`` or ``ListChatappMessage`` (else 404
   ``InvalidAction.NotFound``; missing → 400 ``MissingParameter``), ``x-acs-version`` must be
   ``2020-06-06`` (else 400 ``InvalidVersion``).
2. V3 signature via ``campaigner.signing.verify_authorization`` (the wire query may use ``+``):

   ==========================================  ====  =====================================
   condition                                   HTTP  Code
   ==========================================  ====  =====================================
   no/malformed Authorization, unsigned        400   ``IncompleteSignature``
   ``x-acs-*``/host header
   unknown AccessKeyId                         404   ``InvalidAccessKeyId.NotFound``
   signature or content hash mismatch          400   ``SignatureDoesNotMatch``
   ``x-acs-date`` malformed                    400   ``InvalidTimeStamp.Format``
   ``x-acs-date`` off by more than 15 min      400   ``InvalidTimeStamp.Expired``
   nonce seen in the last 15 min (per key)     400   ``SignatureNonceUsed``
   STS ``x-acs-accesskey-id`` ≠ Credential     400   ``InvalidSecurityToken.MismatchWithAccessKey``
   STS token listed as expired                 403   ``InvalidSecurityToken.Expired``
   ==========================================  ====  =====================================

   Codes/statuses are the Alibaba POP gateway's public ones (InvalidAccessKeyId.NotFound is 404
   in the common error tables); the exact V3 wording is **unverified**. Error bodies have the
   gateway shape of capture ``f``: ``{"RequestId","HostId","Code","Message","Recommend"}``.
3. Flow control, per AccessKeyId and action: more than ``qps_limit`` admitted requests in any
   sliding 1 s window → 400 ``System.LimitControl`` "The system is under flow control." (capture
   ``f``; not accepted, answered at once). Rejected requests do not use up the quota, so the
   admitted (and hence accepted) count in any 1 s window never exceeds ``qps_limit``.
4. Injected faults (``FaultPlan``), chosen per request deterministically from the seed and the
   request's sequence number (SendChatappMessage requests that passed 1-3, in arrival order).
   Before acceptance: ``reset_before`` (TCP RST, no answer), ``unavailable_503`` (capture ``g``
   body), ``throttle`` (as 3). After acceptance and logging: ``reset_after``, ``timeout_after``
   (hang ``hang_s`` or until shutdown, then RST), ``error_500_after`` (500 ``InternalError``),
   ``malformed_200`` (rotating: truncated JSON, an HTML page, JSON without ``MessageId``).
   Outage windows: ``refuse`` closes the listening socket (connection refused) for the window
   and answers requests on already-open keep-alive connections with 503 + ``Connection: close``;
   any other fault name in a window applies that fault at ``rate`` during the window (e.g. a
   10 s burst of 50 % ``throttle``).
5. Parameter validation with ``campaigner.channels.check_call`` and ``check_recipient``, then
   ``FaultPlan.fail_recipients`` (To → Code). A problem is answered, **not accepted**, as HTTP
   ``business_error_status`` (default 200, as capture ``j``: ``{"RequestId","Code","Message"}``;
   docs/wire-format.md#answers: the SDK returns it as a normal response). With a 4xx status the
   body gets the gateway shape instead.
6. Accept: append to the log, wait the configured latency, answer 200
   ``{"RequestId","Code":"OK","Message":"OK","MessageId"}`` with
   ``Content-Type: application/json;charset=utf-8`` and ``x-acs-request-id``.
   ``AccessDeniedDetail`` is left out of success bodies (the captures have none; the doc's
   ``"None"`` is a placeholder example value).

Latency: ``latency_ms`` plus seeded jitter, either ``uniform`` on ``[0, jitter_ms]`` or
``lognormal`` with median ``jitter_ms`` and shape ``jitter_sigma`` (``jitter_ms=50,
jitter_sigma=1.8`` gives p50 ≈ 50 ms and p99 ≈ 3 s, like F7 in docs/row-states.md). It applies to
requests that reach the backend (step 4 on); auth and flow-control errors answer at once.

``ListChatappMessage`` (**response shape partly unverified**). Request names follow the SDK model
``ListChatappMessageRequest``: ``ChannelType``, ``BusinessNumber`` and ``Page`` (JSON
``{"Index":1,"Size":20}``) are required (else 400 ``Missing<Name>``); ``CustSpaceId`` is
documented as required too but not enforced here. Filters: ``UserNumber`` (To), ``BusinessNumber``
(From), ``TemplateCode``, ``StartTime``/``EndTime`` (ms epoch, inclusive, on the receive time),
``EventAction`` (only ``DOWN`` rows exist), ``MessageStatus`` (``success``), ``GroupMessageId``
(never matches). Numbers match with or without a leading ``+``. Newest first, ``Size`` ≤ 100.
The answer uses the SDK model ``ListChatappMessageResponseBody``: ``{"RequestId","Code":"OK",
"Message":"OK","Success":true,"Data":[{"MessageId","UserNumber","BusinessNumber","ChannelType",
"EventAction":"DOWN","MessageStatus":"success","SendTime":"2026-01-01T00:00:00.000+00:00",
"TemplateCode","LanguageCode","Type","MessageType","Month"}]}``; the field values' formats follow
the SDK examples, the live service was never observed. It has no total count.

Extra endpoints for tests and the sandbox: ``GET /_sim/accepted`` (JSON lines, the same records
as the log file) and ``GET /_sim/stats`` (JSON counters, ``max_in_window``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import math
import os
import random
import signal
import socket
import struct
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from sys import intern
from typing import Any, Literal, TextIO

from aiohttp import web

from campaigner import signing
from campaigner.pacing import max_in_window

__all__ = (
    "API_VERSION",
    "LIST_ACTION",
    "SEND_ACTION",
    "AcceptedSend",
    "Fault",
    "FaultPlan",
    "FaultWindow",
    "Simulator",
    "SimulatorConfig",
    "read_accepted_log",
    "run_forever",
    "serve",
)

logger = logging.getLogger(__name__)

SEND_ACTION = "SendChatappMessage"
LIST_ACTION = "ListChatappMessage"
API_VERSION = "2020-06-06"
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


_BEFORE_ACCEPT = frozenset({Fault.UNAVAILABLE_503, Fault.RESET_BEFORE, Fault.THROTTLE})
_FAULT_NAMES = frozenset(f.value for f in Fault)


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """``fault`` (a ``Fault`` name or ``"refuse"``) applies to ``rate`` of the requests that
    arrive in ``[start_s, start_s + duration_s)`` after the server started."""

    start_s: float
    duration_s: float
    fault: str = REFUSE
    rate: float = 1.0


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


def _default_credentials() -> dict[str, str]:
    return {"testAccessKeyId": "testAccessKeySecret"}


@dataclass
class SimulatorConfig:
    """Behaviour of one simulator instance; everything random derives from ``seed``."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter: Literal["uniform", "lognormal"] = "uniform"
    jitter_sigma: float = 1.0
    seed: int = 0
    qps_limit: int = 250
    credentials: Mapping[str, str] = field(default_factory=_default_credentials)
    faults: FaultPlan = field(default_factory=FaultPlan)
    business_error_status: int = 200
    max_skew_s: float = 900.0
    expired_security_tokens: frozenset[str] = frozenset()
    host_id: str = "cams.ap-southeast-1.aliyuncs.com"
    validate: bool = True


@dataclass(frozen=True, slots=True)
class AcceptedSend:
    """One send the fake CAMS accepted: what the recipient "really received"."""

    message_id: str
    request_id: str
    to: str
    from_: str
    channel_type: str
    type: str
    template_code: str | None
    language: str | None
    message_type: str | None
    task_id: str | None
    access_key_id: str
    params_hash: str  # sha256 hex of the canonical (sorted, encoded) query; no secrets in it
    received_monotonic: float
    received_wall: float
    fault: str | None  # the post-acceptance fault applied to the answer, if any

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "request_id": self.request_id,
            "to": self.to,
            "from": self.from_,
            "channel_type": self.channel_type,
            "type": self.type,
            "template_code": self.template_code,
            "language": self.language,
            "message_type": self.message_type,
            "task_id": self.task_id,
            "access_key_id": self.access_key_id,
            "params_hash": self.params_hash,
            "received_monotonic": self.received_monotonic,
            "received_wall": self.received_wall,
            "received_at": _iso_ms(self.received_wall),
            "fault": self.fault,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AcceptedSend:
        return cls(
            message_id=data["message_id"],
            request_id=data["request_id"],
            to=data["to"],
            from_=data["from"],
            channel_type=data["channel_type"],
            type=data["type"],
            template_code=data.get("template_code"),
            language=data.get("language"),
            message_type=data.get("message_type"),
            task_id=data.get("task_id"),
            access_key_id=data["access_key_id"],
            params_hash=data["params_hash"],
            received_monotonic=float(data["received_monotonic"]),
            received_wall=float(data["received_wall"]),
            fault=data.get("fault"),
        )


def read_accepted_log(path: Path) -> list[AcceptedSend]:
    """Read a JSON-lines accepted-send log; a torn last line (writer killed) is skipped."""
    records = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            records.append(AcceptedSend.from_json(json.loads(line)))
    return records


_JSON_CT = "application/json;charset=utf-8"
_MSG_LIMIT = "The system is under flow control."
_MSG_503 = "The request has failed due to a temporary failure of the server."
_MSG_500 = "The request processing has failed due to some unknown error, exception or failure."
_SIGNATURE_ERRORS: dict[signing.VerifyError, tuple[int, str, str]] = {
    signing.VerifyError.MISSING_AUTHORIZATION: (
        400,
        "IncompleteSignature",
        "The request signature does not conform to Aliyun standards.",
    ),
    signing.VerifyError.MALFORMED_AUTHORIZATION: (
        400,
        "IncompleteSignature",
        "The request signature does not conform to Aliyun standards.",
    ),
    signing.VerifyError.UNSIGNED_HEADER: (
        400,
        "IncompleteSignature",
        "The request signature does not conform to Aliyun standards: host and every x-acs-* "
        "header must be signed.",
    ),
    signing.VerifyError.UNKNOWN_ACCESS_KEY: (
        404,
        "InvalidAccessKeyId.NotFound",
        "Specified access key is not found.",
    ),
    signing.VerifyError.CONTENT_SHA256_MISMATCH: (
        400,
        "SignatureDoesNotMatch",
        "The x-acs-content-sha256 header does not match the request body.",
    ),
    signing.VerifyError.SIGNATURE_MISMATCH: (
        400,
        "SignatureDoesNotMatch",
        "Specified signature does not match our calculation.",
    ),
}


def _iso_ms(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


def _bare(number: str) -> str:
    return number[1:] if number.startswith("+") else number


class Simulator:
    """State and request handling of one fake CAMS; serve it with ``serve`` or ``run_forever``.

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
        seed = self.config.seed
        # Separate streams so that, e.g., latency draws never shift which request gets a fault.
        self._fault_rng = random.Random(f"{seed}/faults")
        self._window_rng = random.Random(f"{seed}/windows")
        self._latency_rng = random.Random(f"{seed}/latency")
        self._id_rng = random.Random(f"{seed}/ids")
        self._seq = 0
        self._message_counter = 0
        self._by_to: dict[str, list[AcceptedSend]] = {}
        self._quota: dict[tuple[str, str], deque[float]] = {}
        self._nonces: set[tuple[str, str]] = set()
        self._nonce_order: deque[tuple[float, tuple[str, str]]] = deque()
        self._epoch = time.monotonic()
        self._refusing = False
        self._stopping: asyncio.Event | None = None
        self._log: TextIO | None = None
        self._log_dirty = False
        if log_path is not None:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # PII: 0600
            self._log = os.fdopen(fd, "a", encoding="utf-8")
        # All parameters travel in the URL, so allow long request lines (aiohttp's default is 8 KiB;
        # the live gateway's limit is unknown).
        self.app = web.Application(handler_args={"max_line_size": 32768, "max_field_size": 16384})
        self.app.router.add_route("POST", "/", self._handle)
        self.app.router.add_route("GET", "/", self._handle)
        self.app.router.add_get("/_sim/accepted", self._handle_accepted)
        self.app.router.add_get("/_sim/stats", self._handle_stats)

    # ------------------------------------------------------------------ public figures

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

    def flush(self, *, fsync: bool = True) -> None:
        """Push the accepted log to the OS (it is flushed per line anyway) and optionally disk."""
        if self._log is not None:
            self._log.flush()
            if fsync:
                os.fsync(self._log.fileno())
            self._log_dirty = False

    def close(self) -> None:
        if self._log is not None:
            self.flush()
            self._log.close()
            self._log = None

    # ------------------------------------------------------------------ HTTP handlers

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        arrived_wall = time.time()
        headers = request.headers
        action = headers.get("x-acs-action", "")
        if action == SEND_ACTION:
            self.arrivals.append(arrived)
        if self._refusing:
            # Listener is closed for an outage; drain keep-alive connections without accepting.
            return self._error(503, "ServiceUnavailable", _MSG_503, gateway=False, close=True)
        body = await request.read()
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
        verdict = signing.verify_authorization(
            method=request.method,
            path=request.rel_url.raw_path,
            raw_query=request.rel_url.raw_query_string,
            headers=headers.items(),
            body=body,
            lookup_secret=self.config.credentials.get,
        )
        if verdict.error is not None:
            status, code, message = _SIGNATURE_ERRORS[verdict.error]
            if verdict.error is signing.VerifyError.SIGNATURE_MISMATCH and verdict.string_to_sign:
                message = f"{message} server string to sign is:{verdict.string_to_sign}"
            return self._error(status, code, message)
        key_id = verdict.access_key_id or ""
        refused = self._check_replay(headers, key_id, arrived_wall)
        if refused is not None:
            return refused
        if not self._admit(key_id, action, arrived):
            return self._throttled()
        delay = self._draw_delay()
        if action == LIST_ACTION:
            await self._sleep(delay)
            return self._list(verdict.params)
        return await self._send(request, verdict.params, key_id, arrived, arrived_wall, delay)

    def _check_replay(
        self, headers: Mapping[str, str], key_id: str, now_wall: float
    ) -> web.Response | None:
        problem = signing.check_date(headers.get("x-acs-date"), now_wall, self.config.max_skew_s)
        if problem == "expired":
            return self._error(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        if problem is not None:
            return self._error(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        token = headers.get("x-acs-security-token")
        if token is not None:
            if headers.get("x-acs-accesskey-id", key_id) != key_id:
                return self._error(
                    400,
                    "InvalidSecurityToken.MismatchWithAccessKey",
                    "Specified security token does not match the access key.",
                )
            if token in self.config.expired_security_tokens:
                return self._error(
                    403, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired."
                )
        # Remember nonces for the accepted clock skew: older requests fail the date check anyway.
        horizon = now_wall - self.config.max_skew_s
        while self._nonce_order and self._nonce_order[0][0] < horizon:
            self._nonces.discard(self._nonce_order.popleft()[1])
        nonce_key = (key_id, headers.get("x-acs-signature-nonce", ""))
        if nonce_key in self._nonces:
            return self._error(
                400, "SignatureNonceUsed", "Specified signature nonce was used already."
            )
        self._nonces.add(nonce_key)
        self._nonce_order.append((now_wall, nonce_key))
        return None

    def _admit(self, key_id: str, action: str, now: float) -> bool:
        """Sliding-window flow control: at most qps_limit admitted in any (now-1 s, now]."""
        window = self._quota.setdefault((key_id, action), deque())
        cutoff = now - 1.0
        while window and window[0] <= cutoff:
            window.popleft()
        if len(window) >= self.config.qps_limit:
            return False
        window.append(now)
        return True

    async def _send(
        self,
        request: web.Request,
        params: dict[str, str],
        key_id: str,
        arrived: float,
        arrived_wall: float,
        delay: float,
    ) -> web.StreamResponse:
        self._seq += 1
        fault = self._pick_fault(self._seq, arrived)
        if fault in _BEFORE_ACCEPT:
            self.faults_injected[fault] += 1
            await self._sleep(delay)
            if fault == Fault.RESET_BEFORE:
                return self._reset(request, "reset_before")
            if fault == Fault.UNAVAILABLE_503:
                return self._error(503, "ServiceUnavailable", _MSG_503, gateway=False)
            return self._throttled()
        problem = self._validate(params)
        if problem is not None:
            await self._sleep(delay)
            code, message = problem
            if self.config.business_error_status >= 400:
                return self._error(self.config.business_error_status, code, message)
            self.rejections[code] += 1
            self.outcomes["business_error"] += 1
            rid = self._request_id()
            return self._json(
                self.config.business_error_status,
                {"RequestId": rid, "Code": code, "Message": message},
                rid,
            )
        record = self._accept(params, key_id, arrived, arrived_wall, fault)
        await self._sleep(delay)  # the client's timeout may fire here: accepted, never answered
        if fault is None:
            self.outcomes["accepted"] += 1
            body = {
                "RequestId": record.request_id,
                "Code": "OK",
                "Message": "OK",
                "MessageId": record.message_id,
            }
            return self._json(200, body, record.request_id)
        self.faults_injected[fault] += 1
        if fault == Fault.RESET_AFTER:
            return self._reset(request, "reset_after")
        if fault == Fault.TIMEOUT_AFTER:
            await self._hang()
            return self._reset(request, "timeout_after")
        if fault == Fault.ERROR_500_AFTER:
            return self._error(500, "InternalError", _MSG_500, request_id=record.request_id)
        return self._malformed(record)

    def _list(self, params: Mapping[str, str]) -> web.Response:
        for name in ("ChannelType", "BusinessNumber", "Page"):
            if not params.get(name):
                return self._error(400, f"Missing{name}", f"{name} is mandatory for this action.")
        try:
            page = json.loads(params["Page"])
            index, size = int(page.get("Index", 1)), int(page.get("Size", 20))
            start = int(params["StartTime"]) if params.get("StartTime") else None
            end = int(params["EndTime"]) if params.get("EndTime") else None
        except (ValueError, TypeError, AttributeError):
            return self._error(400, "InvalidParameter", "The specified parameter is not valid.")
        if index < 1 or not 1 <= size <= 100:
            return self._error(
                400, "InvalidParameter", "The specified parameter Page is not valid."
            )
        user = params.get("UserNumber")
        if user:
            pool = self._by_to.get(_bare(user), []) + self._by_to.get("+" + _bare(user), [])
        else:
            pool = self.accepted
        channel = params["ChannelType"].lower()
        business = _bare(params["BusinessNumber"])
        template = params.get("TemplateCode")
        status = params.get("MessageStatus")
        if (
            params.get("EventAction", "DOWN").upper() != "DOWN"
            or params.get("GroupMessageId")
            or (status and status.lower() != "success")
        ):
            pool = []
        rows = [
            r
            for r in pool
            if r.channel_type.lower() == channel
            and _bare(r.from_) == business
            and (template is None or r.template_code == template)
            and (start is None or r.received_wall * 1000 >= start)
            and (end is None or r.received_wall * 1000 <= end)
        ]
        rows.sort(key=lambda r: r.received_wall, reverse=True)
        data = [_list_item(r) for r in rows[(index - 1) * size : index * size]]
        rid = self._request_id()
        self.outcomes["listed"] += 1
        return self._json(
            200,
            {"RequestId": rid, "Code": "OK", "Message": "OK", "Success": True, "Data": data},
            rid,
        )

    async def _handle_accepted(self, request: web.Request) -> web.Response:
        text = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in self.accepted)
        return web.Response(text=text, content_type="application/x-ndjson")

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    # ------------------------------------------------------------------ decisions

    def _pick_fault(self, seq: int, now: float) -> Fault | None:
        plan = self.config.faults
        draw = self._fault_rng.random()  # always one draw per request: keeps the stream aligned
        elapsed = now - self._epoch
        for window in plan.windows:
            if window.fault != REFUSE and 0 <= elapsed - window.start_s < window.duration_s:
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

    def _accept(
        self,
        params: Mapping[str, str],
        key_id: str,
        arrived: float,
        arrived_wall: float,
        fault: Fault | None,
    ) -> AcceptedSend:
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
            access_key_id=key_id,
            params_hash=hashlib.sha256(signing.canonical_query(params).encode()).hexdigest(),
            received_monotonic=arrived,
            received_wall=arrived_wall,
            fault=fault.value if fault is not None else None,
        )
        self.accepted.append(record)
        self._by_to.setdefault(record.to, []).append(record)
        if self._log is not None:
            # Written and flushed before the answer: the log is what recipients really got.
            self._log.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            self._log.flush()
            self._log_dirty = True
        return record

    def _request_id(self) -> str:
        return str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4)).upper()

    # ------------------------------------------------------------------ answers

    def _json(
        self,
        status: int,
        body: Mapping[str, Any],
        request_id: str,
        *,
        close: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> web.Response:
        headers = {"Content-Type": _JSON_CT, "x-acs-request-id": request_id}
        if close:
            headers["Connection"] = "close"
        if extra:
            headers.update(extra)
        return web.Response(
            status=status,
            body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
            headers=headers,
        )

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
    ) -> web.Response:
        rid = request_id or self._request_id()
        body: dict[str, Any] = {"RequestId": rid}
        if gateway:
            body["HostId"] = self.config.host_id
        body["Code"] = code
        body["Message"] = message
        if gateway:
            body["Recommend"] = f"https://api.aliyun.com/troubleshoot?q={code}"
        self.rejections[code] += 1
        self.outcomes[f"http_{status}"] += 1
        return self._json(status, body, rid, close=close, extra=extra)

    def _throttled(self) -> web.Response:
        retry_after = self.config.faults.retry_after_ms
        extra = {"x-acs-retry-after": str(retry_after)} if retry_after else None
        return self._error(400, "System.LimitControl", _MSG_LIMIT, extra=extra)

    def _malformed(self, record: AcceptedSend) -> web.Response:
        variant = self._message_counter % 3
        rid = record.request_id
        headers = {"x-acs-request-id": rid}
        if variant == 0:
            full = json.dumps({"RequestId": rid, "Code": "OK", "MessageId": record.message_id})
            return web.Response(
                body=full[: len(full) // 2].encode(), headers={**headers, "Content-Type": _JSON_CT}
            )
        if variant == 1:
            html = "<html><body><h1>200 OK</h1><p>Welcome to tengine!</p></body></html>"
            return web.Response(
                body=html.encode(), headers={**headers, "Content-Type": "text/html"}
            )
        return self._json(200, {"RequestId": rid, "Code": "OK", "Message": "OK"}, rid)

    def _reset(self, request: web.Request, kind: str) -> web.Response:
        """Drop the connection with a TCP RST and no answer."""
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        self.outcomes[kind] += 1
        return web.Response()  # never written: the transport is gone

    async def _sleep(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)

    async def _hang(self) -> None:
        stopping = self._stopping
        if stopping is None:
            await asyncio.sleep(self.config.faults.hang_s)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), self.config.faults.hang_s)


def _list_item(r: AcceptedSend) -> dict[str, Any]:
    return {
        "MessageId": r.message_id,
        "UserNumber": r.to,
        "BusinessNumber": r.from_,
        "ChannelType": r.channel_type.upper(),
        "EventAction": "DOWN",
        "EventActionName": "DOWN",
        "MessageStatus": "success",
        "MessageStatusName": "Success",
        "SendTime": _iso_ms(r.received_wall).replace("Z", "+00:00"),
        "Month": datetime.fromtimestamp(r.received_wall, UTC).strftime("%Y%m"),
        "TemplateCode": r.template_code,
        "LanguageCode": r.language,
        "Type": r.type,
        "MessageType": r.message_type,
        "MessageSource": "api",
    }


# ---------------------------------------------------------------------- serving


@contextlib.asynccontextmanager
async def serve(simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``simulator`` on ``host:port`` (0 = a free port); yields ``http://host:PORT``.

    Runs the scheduled ``refuse`` outages and a background fsync of the accepted log; on exit,
    hanging ``timeout_after`` handlers are released and the log is fsynced.
    """
    simulator._stopping = asyncio.Event()
    runner = web.AppRunner(simulator.app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound_port = int(runner.addresses[0][1])
    simulator._epoch = time.monotonic()
    sites = [site]
    tasks = [
        asyncio.create_task(_outages(simulator, runner, sites, host, bound_port)),
        asyncio.create_task(_fsync_loop(simulator)),
    ]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        simulator._stopping.set()
        simulator._refusing = False
        await runner.cleanup()
        simulator._stopping = None
        simulator.flush()


async def _outages(
    simulator: Simulator, runner: web.AppRunner, sites: list[web.TCPSite], host: str, port: int
) -> None:
    windows = sorted(
        (w for w in simulator.config.faults.windows if w.fault == REFUSE), key=lambda w: w.start_s
    )
    for window in windows:
        await asyncio.sleep(max(0.0, simulator._epoch + window.start_s - time.monotonic()))
        logger.info("simulated outage: refusing connections for %.1f s", window.duration_s)
        simulator._refusing = True
        await sites[0].stop()
        await asyncio.sleep(window.duration_s)
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        sites[0] = site
        simulator._refusing = False


async def _fsync_loop(simulator: Simulator, interval_s: float = 0.2) -> None:
    # Lines are flushed to the OS before each answer; fsync in batches off the event loop.
    log = simulator._log
    while log is not None:
        await asyncio.sleep(interval_s)
        if simulator._log_dirty and not log.closed:
            simulator._log_dirty = False
            await asyncio.to_thread(os.fsync, log.fileno())


def _quiet_gc() -> None:
    """Keep full garbage collections from stalling the loop for tens of milliseconds.

    A stalled loop reads a backlog of requests at once and counts them in one second, so a
    client pacing exactly 250/s would be throttled by the simulator's own pauses (measured:
    25-61 ms pauses, 252-262 counted in a second). The accepted-send records only grow, so
    they are frozen out of collections; the phone metadata is loaded up front for the same
    reason.
    """
    from campaigner.channels import check_recipient

    check_recipient("whatsapp", "8613900000001")
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 1000)


async def _refreeze_gc(interval_s: float = 2.0) -> None:
    while True:
        await asyncio.sleep(interval_s)
        gc.freeze()


def run_forever(
    config: SimulatorConfig,
    port: int,
    log_path: Path | None,
    *,
    host: str = "127.0.0.1",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (for ``campaigner sandbox``); ``on_ready`` gets the base URL."""

    async def main() -> None:
        simulator = Simulator(config, log_path=log_path)
        _quiet_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        refreeze = asyncio.create_task(_refreeze_gc())
        try:
            async with serve(simulator, host, port) as url:
                logger.info("CAMS simulator listening on %s", url)
                if on_ready is not None:
                    on_ready(url)
                await stop.wait()
        finally:
            refreeze.cancel()
            simulator.close()

    try:  # uvloop spends less time per request, so arrivals are read (and stamped) sooner
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
