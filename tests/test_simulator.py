"""The fake CAMS over real loopback HTTP: auth, flow control, faults, validation, log, listing."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from campaigner.cams import API_VERSION, LIST_ACTION, SEND_ACTION
from campaigner.channels import check_call, check_recipient
from campaigner.signing import Credentials, format_date, sign_request
from campaigner.sim.faults import Fault, FaultPlan, FaultWindow, SimulatorConfig
from campaigner.sim.gateway import Simulator
from campaigner.sim.records import AcceptedSend, read_accepted_log
from campaigner.sim.server import serve

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sdk-capture"
CREDS = Credentials("testAccessKeyId", "testAccessKeySecret")
QUERY = {
    "ChannelType": "whatsapp",
    "Type": "template",
    "TemplateCode": "744c4b5c79c9432497a075bdfca3****",
    "Language": "en",
    "TemplateParams": '{"name":"Ana Maria","code":"X1"}',
    "From": "8613800000000",
    "To": "8613900000000",
    "TaskId": "task-0001",
}
GATEWAY_ERROR_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


class Answer:
    """A response, or the transport error that replaced it."""

    def __init__(self, status: int | None, text: str, headers: Mapping[str, str], error: str = ""):
        self.status = status
        self.text = text
        self.headers = headers
        self.error = error

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.text)
        return data

    @property
    def code(self) -> str | None:
        try:
            return self.json.get("Code")
        except ValueError:
            return None


@asynccontextmanager
async def running(
    config: SimulatorConfig | None = None, log_path: Path | None = None
) -> AsyncIterator[tuple[Simulator, str, aiohttp.ClientSession]]:
    sim = Simulator(config or SimulatorConfig(validate=False), log_path=log_path)
    try:
        async with serve(sim) as url:
            connector = aiohttp.TCPConnector(limit=400, force_close=False)
            async with aiohttp.ClientSession(connector=connector) as session:
                yield sim, url, session
    finally:
        sim.close()


async def call(
    session: aiohttp.ClientSession,
    url: str,
    query: Mapping[str, str] = QUERY,
    *,
    credentials: Credentials = CREDS,
    action: str = SEND_ACTION,
    version: str = API_VERSION,
    nonce: str | None = None,
    date: str | None = None,
    client_timeout_s: float = 5.0,
) -> Answer:
    signed = sign_request(
        method="POST",
        host=url.removeprefix("http://"),
        query=query,
        credentials=credentials,
        date=date or format_date(time.time()),
        nonce=nonce or uuid.uuid4().hex,
        action=action,
        version=version,
    )
    return await raw_call(
        session, f"{url}/?{signed.query}", signed.headers, client_timeout_s=client_timeout_s
    )


async def raw_call(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    *,
    client_timeout_s: float = 5.0,
) -> Answer:
    try:
        async with session.post(
            URL(url, encoded=True),
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=client_timeout_s),
        ) as resp:
            return Answer(resp.status, await resp.text(), dict(resp.headers))
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Answer(None, "", {}, type(exc).__name__)


def _to(i: int) -> str:
    return f"86139{i:08d}"


# ---------------------------------------------------------------- accept and log


@pytest.mark.anyio
async def test_signed_request_is_accepted_logged_and_answered_like_cams(tmp_path: Path) -> None:
    log = tmp_path / "accepted.jsonl"
    async with running(log_path=log) as (sim, url, session):
        answer = await call(session, url)
        assert answer.status == 200
        body = answer.json
        assert set(body) == {"RequestId", "Code", "Message", "MessageId"}
        assert (body["Code"], body["Message"]) == ("OK", "OK")
        assert answer.headers["Content-Type"] == "application/json;charset=utf-8"
        assert answer.headers["x-acs-request-id"] == body["RequestId"]
        assert len(sim.accepted) == 1
        rec = sim.accepted[0]
        assert (rec.message_id, rec.to, rec.from_) == (
            body["MessageId"],
            QUERY["To"],
            QUERY["From"],
        )
        assert (rec.template_code, rec.task_id) == (QUERY["TemplateCode"], "task-0001")
        assert rec.fault is None
        assert sim.received_count(QUERY["To"]) == 1
        assert sim.arrivals == [rec.received_monotonic]
        async with session.get(f"{url}/_sim/accepted") as resp:
            served = [json.loads(line) for line in (await resp.text()).splitlines()]
        async with session.get(f"{url}/_sim/stats") as resp:
            stats = await resp.json()
    assert served == [rec.to_json()]
    assert stats["accepted"] == 1 and stats["requests"] == 1
    assert read_accepted_log(log) == [rec]
    assert oct(log.stat().st_mode & 0o777) == "0o600"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "name", ["a-template", "c-viber", "e-encoding-edge", "d-product-flow-action"]
)
async def test_sdk_requests_replayed_byte_for_byte_are_accepted(name: str) -> None:
    """The official SDK's own wire form (quote_plus '+' spaces, its header set) verifies."""
    path = CAPTURES / f"{name}.json"
    if not path.exists():
        pytest.skip("reference captures not present")
    request = json.loads(path.read_text(encoding="utf-8"))["requests"][0]
    config = SimulatorConfig(validate=False, max_skew_s=10 * 365 * 86400)  # captures are old
    async with running(config) as (sim, url, session):
        headers = {n: v for n, v in request["headers"] if n.lower() != "content-length"}
        answer = await raw_call(session, f"{url}/?{request['raw_query']}", headers)
        assert answer.status == 200, answer.text
        assert answer.code == "OK"
        assert [r.to for r in sim.accepted] == [dict(request["query"])["To"]]


@pytest.mark.anyio
async def test_long_query_is_served() -> None:
    """Everything travels in the URL; a ~20 KB TemplateParams must not hit a server line limit."""
    params = json.dumps({f"k{i}": "v" * 90 for i in range(200)}, separators=(",", ":"))
    async with running() as (sim, url, session):
        answer = await call(session, url, {**QUERY, "TemplateParams": params})
        assert answer.code == "OK"
        assert len(sim.accepted) == 1


# ---------------------------------------------------------------- authentication


@pytest.mark.anyio
async def test_wrong_secret_is_signature_error_and_not_logged() -> None:
    async with running() as (sim, url, session):
        answer = await call(session, url, credentials=Credentials("testAccessKeyId", "wrong"))
        assert answer.status == 400
        assert set(answer.json) == GATEWAY_ERROR_KEYS
        assert answer.code == "SignatureDoesNotMatch"
        assert sim.accepted == []
        assert len(sim.arrivals) == 1


@pytest.mark.anyio
async def test_unknown_access_key() -> None:
    async with running() as (sim, url, session):
        answer = await call(session, url, credentials=Credentials("LTAI_nobody", "x"))
        assert (answer.status, answer.code) == (404, "InvalidAccessKeyId.NotFound")
        assert sim.accepted == []


@pytest.mark.anyio
async def test_reused_nonce_is_refused() -> None:
    async with running() as (sim, url, session):
        first = await call(session, url, nonce="a" * 32)
        again = await call(session, url, nonce="a" * 32)
        assert first.code == "OK"
        assert (again.status, again.code) == (400, "SignatureNonceUsed")
        assert len(sim.accepted) == 1


@pytest.mark.anyio
async def test_date_outside_15_minutes_or_malformed() -> None:
    async with running() as (sim, url, session):
        old = await call(session, url, date=format_date(time.time() - 16 * 60))
        bad = await call(session, url, date="yesterday")
        assert (old.status, old.code) == (400, "InvalidTimeStamp.Expired")
        assert (bad.status, bad.code) == (400, "InvalidTimeStamp.Format")
        ok = await call(session, url, date=format_date(time.time() - 14 * 60))
        assert ok.code == "OK"
        assert len(sim.accepted) == 1


@pytest.mark.anyio
async def test_unknown_action_wrong_version_and_tampering() -> None:
    async with running() as (sim, url, session):
        unknown = await call(session, url, action="SendSms")
        assert (unknown.status, unknown.code) == (404, "InvalidAction.NotFound")
        version = await call(session, url, version="2017-05-25")
        assert (version.status, version.code) == (400, "InvalidVersion")
        signed = sign_request(
            method="POST",
            host=url.removeprefix("http://"),
            query=QUERY,
            credentials=CREDS,
            date=format_date(time.time()),
            nonce=uuid.uuid4().hex,
        )
        tampered = signed.query.replace("To=86139", "To=86138")
        answer = await raw_call(session, f"{url}/?{tampered}", signed.headers)
        assert (answer.status, answer.code) == (400, "SignatureDoesNotMatch")
        unsigned = await raw_call(
            session, f"{url}/?{signed.query}", {**signed.headers, "x-acs-extra": "1"}
        )
        assert (unsigned.status, unsigned.code) == (400, "IncompleteSignature")
        assert sim.accepted == []


@pytest.mark.anyio
async def test_sts_token_accepted_and_expired_token_refused() -> None:
    config = SimulatorConfig(validate=False, expired_security_tokens=frozenset({"old-token"}))
    async with running(config) as (sim, url, session):
        ok = await call(
            session,
            url,
            credentials=Credentials(CREDS.access_key_id, CREDS.access_key_secret, "fresh-token"),
        )
        expired = await call(
            session,
            url,
            credentials=Credentials(CREDS.access_key_id, CREDS.access_key_secret, "old-token"),
        )
        assert ok.code == "OK"
        assert (expired.status, expired.code) == (403, "InvalidSecurityToken.Expired")
        assert len(sim.accepted) == 1


# ---------------------------------------------------------------- flow control


@pytest.mark.anyio
async def test_flow_control_never_admits_more_than_the_limit_per_sliding_second() -> None:
    async with running(SimulatorConfig(validate=False, qps_limit=250)) as (sim, url, session):
        answers = await asyncio.gather(
            *(call(session, url, {**QUERY, "To": _to(i)}) for i in range(300))
        )
        codes = [a.code for a in answers]
        limited = [a for a in answers if a.code == "System.LimitControl"]
        assert codes.count("OK") == len(sim.accepted)
        assert codes.count("OK") + len(limited) == 300
        if sim.arrivals[-1] - sim.arrivals[0] < 1.0:  # all 300 within one second (usual)
            assert (len(sim.accepted), len(limited)) == (250, 50)
        assert limited
        assert all(a.status == 400 and set(a.json) == GATEWAY_ERROR_KEYS for a in limited)
        assert limited[0].json["Message"] == "The system is under flow control."
        assert sim.throttled == len(limited)
        assert sim.max_in_window() > 250  # every arrival is counted ...
        assert sim.max_in_window(accepted_only=True) == 250  # ... but never over the limit
        await asyncio.sleep(1.05)  # the window slides: room again
        assert (await call(session, url)).code == "OK"


# ---------------------------------------------------------------- faults


def _forced(fault: Fault, **plan: Any) -> SimulatorConfig:
    return SimulatorConfig(validate=False, faults=FaultPlan(every={fault.value: 1}, **plan))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "status", "code", "error", "accepted"),
    [
        (Fault.UNAVAILABLE_503, 503, "ServiceUnavailable", "", False),
        (Fault.THROTTLE, 400, "System.LimitControl", "", False),
        (Fault.RESET_BEFORE, None, None, "ClientOSError", False),
        (Fault.RESET_AFTER, None, None, "ClientOSError", True),
        (Fault.ERROR_500_AFTER, 500, "InternalError", "", True),
    ],
)
async def test_fault_outcome_matches_the_accepted_log(
    fault: Fault, status: int | None, code: str | None, error: str, accepted: bool
) -> None:
    async with running(_forced(fault)) as (sim, url, session):
        answer = await call(session, url)
        assert answer.status == status
        assert answer.code == code
        if error:  # RST: aiohttp reports ECONNRESET as ClientOSError (or a disconnect)
            assert answer.error in {error, "ServerDisconnectedError", "ClientPayloadError"}
        assert len(sim.accepted) == int(accepted)
        assert sim.faults_injected[fault] == 1
        if accepted:
            assert sim.accepted[0].fault == fault.value


@pytest.mark.anyio
async def test_timeout_after_accepts_then_hangs_past_the_client_timeout() -> None:
    async with running(_forced(Fault.TIMEOUT_AFTER, hang_s=30)) as (sim, url, session):
        started = time.monotonic()
        answer = await call(session, url, client_timeout_s=0.3)
        assert answer.status is None and answer.error in {"TimeoutError", "ServerTimeoutError"}
        assert 0.25 < time.monotonic() - started < 2
        assert [r.fault for r in sim.accepted] == ["timeout_after"]
    # leaving `serve` released the hanging handler instead of waiting 30 s


@pytest.mark.anyio
async def test_malformed_200_variants_are_all_accepted() -> None:
    async with running(_forced(Fault.MALFORMED_200)) as (sim, url, session):
        answers = [await call(session, url, {**QUERY, "To": _to(i)}) for i in range(3)]
        assert all(a.status == 200 for a in answers)
        kinds = set()
        for a in answers:
            try:
                body = json.loads(a.text)
            except ValueError:
                kinds.add("html" if a.text.startswith("<html") else "truncated")
            else:
                assert body["Code"] == "OK" and "MessageId" not in body
                kinds.add("no-message-id")
        assert kinds == {"html", "truncated", "no-message-id"}
        assert len(sim.accepted) == 3


@pytest.mark.anyio
async def test_refuse_outage_window_then_recovery() -> None:
    plan = FaultPlan(windows=[FaultWindow(start_s=0.3, duration_s=0.6, fault="refuse")])
    async with running(SimulatorConfig(validate=False, faults=plan)) as (sim, url, session):
        assert (await call(session, url, {**QUERY, "To": _to(1)})).code == "OK"
        await asyncio.sleep(0.45)
        during = await call(session, url, {**QUERY, "To": _to(2)})
        # an idle keep-alive connection gets 503 + close; a new connection is refused
        assert during.code == "ServiceUnavailable" or during.error == "ClientConnectorError"
        fresh = await call(session, url, {**QUERY, "To": _to(3)})
        assert fresh.error == "ClientConnectorError"
        await asyncio.sleep(0.6)
        assert (await call(session, url, {**QUERY, "To": _to(4)})).code == "OK"
        assert [r.to for r in sim.accepted] == [_to(1), _to(4)]


@pytest.mark.anyio
async def test_throttle_burst_window_applies_its_rate() -> None:
    plan = FaultPlan(windows=[FaultWindow(start_s=0, duration_s=60, fault="throttle", rate=0.5)])
    config = SimulatorConfig(validate=False, faults=plan, seed=7)
    async with running(config) as (sim, url, session):
        answers = [await call(session, url, {**QUERY, "To": _to(i)}) for i in range(60)]
        limited = sum(a.code == "System.LimitControl" for a in answers)
        assert 15 <= limited <= 45
        assert len(sim.accepted) == 60 - limited


@pytest.mark.anyio
async def test_faults_are_deterministic_for_a_seed() -> None:
    rates = {"unavailable_503": 0.1, "error_500_after": 0.1, "malformed_200": 0.1}

    async def run(seed: int) -> tuple[list[str | None], list[str]]:
        config = SimulatorConfig(validate=False, seed=seed, faults=FaultPlan(rates=rates))
        async with running(config) as (sim, url, session):
            answers = [await call(session, url, {**QUERY, "To": _to(i)}) for i in range(40)]
            return [a.code for a in answers], [r.message_id for r in sim.accepted]

    first, second, other = await run(3), await run(3), await run(4)
    assert first == second
    assert first[0] != other[0]
    assert len(set(first[1])) == len(first[1])  # MessageIds unique


@pytest.mark.anyio
async def test_every_nth_fault() -> None:
    config = SimulatorConfig(validate=False, faults=FaultPlan(every={"unavailable_503": 3}))
    async with running(config) as (sim, url, session):
        answers = [await call(session, url, {**QUERY, "To": _to(i)}) for i in range(9)]
        assert [a.status for a in answers] == [200, 200, 503] * 3
        assert len(sim.accepted) == 6


@pytest.mark.anyio
async def test_fixed_latency_delays_the_answer() -> None:
    async with running(SimulatorConfig(validate=False, latency_ms=150)) as (sim, url, session):
        started = time.monotonic()
        assert (await call(session, url)).code == "OK"
        assert time.monotonic() - started >= 0.15
        # accepted (logged) before the latency elapsed: the log leads the answer
        assert sim.accepted[0].received_monotonic < started + 0.1


# ---------------------------------------------------------------- business errors and validation


@pytest.mark.anyio
async def test_fail_recipient_is_http_200_business_error_not_accepted() -> None:
    plan = FaultPlan(fail_recipients={_to(5): "InvalidParameter.PhoneNumberError"})
    async with running(SimulatorConfig(validate=False, faults=plan)) as (sim, url, session):
        bad = await call(session, url, {**QUERY, "To": _to(5)})
        good = await call(session, url, {**QUERY, "To": _to(6)})
        assert bad.status == 200
        assert set(bad.json) == {"RequestId", "Code", "Message"}  # capture j shape
        assert bad.code == "InvalidParameter.PhoneNumberError"
        assert good.code == "OK"
        assert [r.to for r in sim.accepted] == [_to(6)]
        assert sim.received_count(_to(5)) == 0


@pytest.mark.anyio
async def test_business_errors_can_be_answered_as_http_400() -> None:
    plan = FaultPlan(fail_recipients={_to(5): "ERR-OPERATION-MAAP-0065"})
    config = SimulatorConfig(validate=False, faults=plan, business_error_status=400)
    async with running(config) as (sim, url, session):
        bad = await call(session, url, {**QUERY, "To": _to(5)})
        assert (bad.status, bad.code) == (400, "ERR-OPERATION-MAAP-0065")
        assert set(bad.json) == GATEWAY_ERROR_KEYS
        assert sim.accepted == []


@pytest.mark.anyio
async def test_parameter_validation_goes_through_channels_check_call() -> None:
    broken = {k: v for k, v in QUERY.items() if k != "TemplateCode"}  # template without code
    expected = check_call(broken)
    assert expected, "check_call should flag a template send without TemplateCode"
    assert check_call(QUERY) == []
    async with running(SimulatorConfig()) as (sim, url, session):
        answer = await call(session, url, broken)
        assert (answer.status, answer.code) == (200, expected[0].code)
        assert answer.json["Message"] == expected[0].message
        assert (await call(session, url)).code == "OK"
        assert [r.to for r in sim.accepted] == [QUERY["To"]]


@pytest.mark.anyio
async def test_recipient_validation_goes_through_channels_check_recipient() -> None:
    query = {**QUERY, "To": "+86 139 0000"}
    expected = check_recipient("whatsapp", query["To"])
    assert expected is not None and check_call(query) == []
    async with running(SimulatorConfig()) as (sim, url, session):
        answer = await call(session, url, query)
        assert (answer.status, answer.code) == (200, expected.code)
        assert sim.accepted == []


# ---------------------------------------------------------------- ListChatappMessage


def _list_query(**extra: str) -> dict[str, str]:
    return {
        "ChannelType": "whatsapp",
        "BusinessNumber": QUERY["From"],
        "EventAction": "DOWN",
        "Page": json.dumps({"Index": 1, "Size": 20}, separators=(",", ":")),
        **extra,
    }


@pytest.mark.anyio
async def test_list_chatapp_message_finds_accepted_send_by_recipient_and_window() -> None:
    async with running() as (sim, url, session):
        before_ms = int(time.time() * 1000) - 1
        sent = (await call(session, url, {**QUERY, "To": _to(7)})).json["MessageId"]
        await call(session, url, {**QUERY, "To": _to(8)})
        after_ms = int(time.time() * 1000) + 1
        found = await call(
            session,
            url,
            _list_query(UserNumber=_to(7), StartTime=str(before_ms), EndTime=str(after_ms)),
            action=LIST_ACTION,
        )
        assert found.status == 200
        body = found.json
        assert (body["Code"], body["Success"]) == ("OK", True)
        assert [d["MessageId"] for d in body["Data"]] == [sent]
        item = body["Data"][0]
        assert (item["UserNumber"], item["BusinessNumber"]) == (_to(7), QUERY["From"])
        assert item["TemplateCode"] == QUERY["TemplateCode"]
        assert item["EventAction"] == "DOWN"
        plus = await call(session, url, _list_query(UserNumber="+" + _to(7)), action=LIST_ACTION)
        assert [d["MessageId"] for d in plus.json["Data"]] == [sent]
        later = await call(
            session,
            url,
            _list_query(UserNumber=_to(7), StartTime=str(after_ms)),
            action=LIST_ACTION,
        )
        assert later.json["Data"] == []
        everyone = await call(session, url, _list_query(), action=LIST_ACTION)
        assert len(everyone.json["Data"]) == 2
        page = json.dumps({"Index": 2, "Size": 1})
        second = await call(session, url, _list_query(Page=page), action=LIST_ACTION)
        assert [d["MessageId"] for d in second.json["Data"]] == [sent]  # newest first
        missing = await call(
            session,
            url,
            {k: v for k, v in _list_query().items() if k != "Page"},
            action=LIST_ACTION,
        )
        assert (missing.status, missing.code) == (400, "MissingPage")
        assert len(sim.accepted) == 2


# ---------------------------------------------------------------- log file and figures


@pytest.mark.anyio
async def test_jsonl_log_holds_every_accepted_send_including_unanswered(tmp_path: Path) -> None:
    log = tmp_path / "accepted.jsonl"
    rates = {"reset_after": 0.2, "error_500_after": 0.2, "unavailable_503": 0.2}
    config = SimulatorConfig(validate=False, seed=11, faults=FaultPlan(rates=rates))
    async with running(config, log_path=log) as (sim, url, session):
        await asyncio.gather(*(call(session, url, {**QUERY, "To": _to(i)}) for i in range(60)))
        # complete while the server is still running: lines are flushed before each answer
        assert read_accepted_log(log) == sim.accepted
    records = read_accepted_log(log)
    assert records == sim.accepted
    assert 0 < len(records) < 60
    assert {r.fault for r in records} == {None, "reset_after", "error_500_after"}
    assert len({r.message_id for r in records}) == len(records)


def test_read_accepted_log_skips_a_torn_last_line(tmp_path: Path) -> None:
    rec = AcceptedSend(
        "m1",
        "r1",
        "1",
        "2",
        "whatsapp",
        "template",
        "t",
        "en",
        None,
        None,
        "k",
        "h",
        1.0,
        2.0,
        None,
    )
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps(rec.to_json()) + "\n" + '{"message_id": "m2", "to', encoding="utf-8")
    assert read_accepted_log(log) == [rec]


def test_max_in_window_counts_half_open_windows() -> None:
    sim = Simulator(SimulatorConfig(validate=False))
    sim.arrivals.extend([0.0, 0.5, 0.999, 1.0, 1.2, 3.0])
    assert sim.max_in_window() == 4  # [0.5, 1.5) holds 0.5, 0.999, 1.0, 1.2
    assert sim.max_in_window(0.1) == 2
    assert Simulator().max_in_window() == 0


def test_fault_plan_rejects_unknown_names_and_bad_rates() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(rates={"explode": 0.1})
    with pytest.raises(ValueError, match="sum"):
        FaultPlan(rates={"reset_after": 0.7, "throttle": 0.5})
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(windows=[FaultWindow(0, 1, "meteor")])


_SANDBOX = """
import sys
from pathlib import Path
from campaigner.sim.faults import FaultPlan, SimulatorConfig
from campaigner.sim.server import run_forever
config = SimulatorConfig(validate=False, faults=FaultPlan(every={"reset_after": 2}))
run_forever(config, 0, Path(sys.argv[1]), on_ready=lambda url: print(url, flush=True))
"""


@pytest.mark.anyio
async def test_run_forever_serves_logs_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "sandbox.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SANDBOX, str(log), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            answers = [await call(session, url, {**QUERY, "To": _to(i)}) for i in range(6)]
            assert [a.code for a in answers] == ["OK", None] * 3  # every 2nd: accepted, reset
            async with session.get(f"{url}/_sim/accepted") as resp:
                served = [json.loads(line) for line in (await resp.text()).splitlines()]
            async with session.get(f"{url}/_sim/stats") as resp:
                stats = await resp.json()
        # complete while the server still runs: what the recipients "really received"
        on_disk = read_accepted_log(log)
        assert [r.to_json() for r in on_disk] == served
        assert [r.to for r in on_disk] == [_to(i) for i in range(6)]
        assert stats["accepted"] == 6 and stats["faults_injected"] == {"reset_after": 3}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert read_accepted_log(log) == on_disk


@pytest.mark.anyio
async def test_a_request_arrives_when_its_first_bytes_do() -> None:
    """The gateway counts a request when it arrives, not when the simulator gets round to
    it: stamped at the handler, arrivals carried the simulator's own delays (here the
    rest of the request, 0.3 s later) and bunched up into one counted second."""
    simulator = Simulator(SimulatorConfig(latency_ms=0))
    async with serve(simulator) as url:
        host, port = URL(url).host, URL(url).port
        reader, writer = await asyncio.open_connection(host, port)
        first_bytes = time.monotonic()
        writer.write(f"POST / HTTP/1.1\r\nHost: {host}\r\n".encode())
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(f"x-acs-action: {SEND_ACTION}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        await reader.readline()  # the answer (a refusal: the request is not signed)
        writer.close()
    assert len(simulator.arrivals) == 1
    assert simulator.arrivals[0] - first_bytes < 0.1


@pytest.mark.anyio
async def test_a_body_in_pieces_leaves_no_stamp_for_the_next_request() -> None:
    simulator = Simulator(SimulatorConfig(latency_ms=0))
    head = f"POST / HTTP/1.1\r\nHost: h\r\nx-acs-action: {SEND_ACTION}\r\nContent-Length: 4\r\n\r\n"
    async with serve(simulator) as url:
        reader, writer = await asyncio.open_connection(URL(url).host, URL(url).port)
        writer.write(head.encode() + b"ab")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"cd")  # the rest of the body
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.3)  # then the connection idles before its next request
        second = time.monotonic()
        writer.write(head.encode() + b"abcd")
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
    assert len(simulator.arrivals) == 2
    assert simulator.arrivals[1] >= second - 0.01
