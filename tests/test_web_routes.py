"""The web app's routes through Starlette's TestClient: sign-in, sessions, CSRF, the attempt
limit, security headers, escaping of hostile cells and names, upload names and sizes, the
fill-in form, and a whole preview -> send -> report flow against the built-in simulator."""

from __future__ import annotations

import csv
import io
import re
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from campaigner.config import load_campaign, parse_campaign
from campaigner.web import Web, create_app, uploads
from campaigner.web.campaign_form import CampaignForm
from tests.samples import campaign_toml

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
CAMPAIGN = campaign_toml("web-test", send='default_region = "CN"')


def make_client(out: Path, *, sandbox: bool = False) -> TestClient:
    web = Web(out, sandbox=sandbox, environ={"CAMPAIGNER_WEB_PASSWORD": PASSWORD})
    return TestClient(create_app(web, environ={}), base_url="http://testserver")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path / "out") as client:
        yield client


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def sign_in(client: TestClient) -> str:
    token = csrf(client.get("/signin").text)
    answer = client.post(
        "/signin",
        data={"csrf_token": token, "password": PASSWORD, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    return csrf(client.get("/").text)


def upload(
    client: TestClient,
    token: str,
    recipients: bytes,
    *,
    name: str = "list.csv",
    campaign: str | None = CAMPAIGN,
) -> tuple[int, str, str]:
    files = {"recipients": (name, recipients, "text/csv")}
    if campaign is not None:
        files["campaign"] = ("campaign.toml", campaign.encode(), "application/toml")
    answer = client.post(
        "/campaigns/new", data={"csrf_token": token}, files=files, follow_redirects=False
    )
    return answer.status_code, answer.headers.get("location", ""), answer.text


def hostile_list() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["phone", "name", SCRIPT, IMG])
    writer.writerow(["8613900000001", SCRIPT, IMG, SCRIPT])
    writer.writerow([SCRIPT, IMG, SCRIPT, IMG])  # not a phone number: an invalid row
    writer.writerow([IMG, "x", "y", "z"])
    return buffer.getvalue().encode()


def assert_escaped(html: str) -> None:
    assert SCRIPT not in html and "<img" not in html
    assert "alert(1)" in html  # shown, as text


# -- sessions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/campaigns/new",
        "/runs/some-run",
        "/runs/some-run/events",
        "/runs/some-run/report.csv",
        "/runs/some-run/report.xlsx",
        "/drafts/AAAAAAAAAAAAAAAAAAAAAA",
        "/drafts/AAAAAAAAAAAAAAAAAAAAAA/preview-report.csv",
        "/drafts/AAAAAAAAAAAAAAAAAAAAAA/campaign.toml",
    ],
)
def test_every_page_and_download_needs_a_session(client: TestClient, path: str) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?next=")


def test_an_action_without_a_session_does_nothing(client: TestClient, tmp_path: Path) -> None:
    answer = client.post(
        "/campaigns/new",
        files={"recipients": ("l.csv", b"phone\n8613900000001\n", "text/csv")},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/signin")
    assert list((tmp_path / "out" / ".campaigner-web" / "drafts").iterdir()) == []


def test_sign_in_sets_a_strict_http_only_cookie_secure_behind_https(client: TestClient) -> None:
    token = csrf(client.get("/signin").text)
    answer = client.post(
        "/signin",
        data={"csrf_token": token, "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    plain = make_client(Path(client.app.state.web.workspace.out))  # type: ignore[attr-defined]
    token = csrf(plain.get("/signin").text)
    answer = plain.post(
        "/signin", data={"csrf_token": token, "password": PASSWORD}, follow_redirects=False
    )
    assert "secure" not in answer.headers["set-cookie"].lower()
    assert plain.get("/", follow_redirects=False).status_code == 200


def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(
    client: TestClient,
) -> None:
    token = csrf(client.get("/signin?next=/campaigns/new").text)
    answer = client.post(
        "/signin",
        data={"csrf_token": token, "password": PASSWORD, "next": "/campaigns/new"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/campaigns/new"
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        token = csrf(client.get("/signin").text)
        answer = client.post(
            "/signin",
            data={"csrf_token": token, "password": PASSWORD, "next": evil},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/"


def test_five_wrong_passwords_a_minute_then_a_wait(client: TestClient) -> None:
    token = csrf(client.get("/signin").text)
    for _ in range(5):
        answer = client.post("/signin", data={"csrf_token": token, "password": "wrong"})
        assert answer.status_code == 401 and "Wrong password" in answer.text
    answer = client.post("/signin", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 0
    assert client.get("/", follow_redirects=False).status_code == 303  # still signed out


def test_sign_out_ends_the_session(client: TestClient) -> None:
    token = sign_in(client)
    answer = client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_forged_cookie_is_no_session(client: TestClient) -> None:
    client.cookies.set("campaigner_session", "eyJjIjoieCIsInMiOnRydWV9.forged.sig")
    assert client.get("/", follow_redirects=False).status_code == 303


# -- CSRF -------------------------------------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused(client: TestClient, tmp_path: Path) -> None:
    sign_in(client)
    files = {"recipients": ("l.csv", b"phone\n8613900000001\n", "text/csv")}
    for data in ({}, {"csrf_token": "not-the-token"}):
        answer = client.post("/campaigns/new", data=data, files=files, follow_redirects=False)
        assert answer.status_code == 403
    assert list((tmp_path / "out" / ".campaigner-web" / "drafts").iterdir()) == []
    # The sign-in form too.
    answer = client.post("/signin", data={"password": PASSWORD}, follow_redirects=False)
    assert answer.status_code == 403


def test_htmx_requests_send_the_token_as_a_header(client: TestClient) -> None:
    token = sign_in(client)
    status, location, _ = upload(client, token, b"phone,name\n8613900000001,Ana\n", campaign=None)
    assert status == 303 and location.endswith("/form")
    check = location.replace("/form", "/check")
    fields = {"recipient_column": "phone", "name": "x", "sender": "8613800000000"}
    assert client.post(check, data=fields).status_code == 403
    answer = client.post(check, data=fields, headers={"X-CSRF-Token": token})
    assert answer.status_code == 200


# -- headers and escaping ---------------------------------------------------------------


def test_every_page_has_a_csp_without_inline_script(client: TestClient) -> None:
    pages = [client.get("/signin")]
    sign_in(client)
    pages += [client.get("/"), client.get("/campaigns/new")]
    for answer in pages:
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text)  # no inline script
        assert not re.search(r"\son[a-z]+=", answer.text)  # no inline handlers
    static = client.get("/static/htmx.min.js")
    assert static.status_code == 200 and "htmx" in static.text
    assert client.get("/static/favicon.svg").status_code == 200
    assert "strict-transport-security" not in pages[0].headers
    behind_tls = client.get("/signin", headers={"X-Forwarded-Proto": "https"})
    assert behind_tls.headers["strict-transport-security"].startswith("max-age=")


def test_hostile_cells_column_and_file_names_are_shown_as_text(client: TestClient) -> None:
    token = sign_in(client)
    status, location, text = upload(client, token, hostile_list(), name=f"{IMG}.csv")
    assert status == 303, text
    preview = client.get(location)
    assert preview.status_code == 200
    assert_escaped(preview.text)
    assert "&lt;script&gt;" in preview.text  # the bad row's cells, escaped
    draft = location.rsplit("/", 1)[1]
    rows = client.get(f"/drafts/{draft}/invalid?page=0")
    assert_escaped(rows.text)
    # The fill-in form lists the column names.
    status, location, _ = upload(client, token, hostile_list(), name=f"{SCRIPT}.csv", campaign=None)
    form = client.get(location)
    assert form.status_code == 200
    assert_escaped(form.text)
    check = client.post(
        location.replace("/form", "/check"),
        data={"recipient_column": SCRIPT, "param_key_0": IMG, "param_value_0": IMG},
        headers={"X-CSRF-Token": token},
    )
    assert "<img" not in check.text and SCRIPT not in check.text


def test_an_uploaded_name_never_becomes_a_path(client: TestClient, tmp_path: Path) -> None:
    token = sign_in(client)
    for name in ("../../escaped.csv", "/tmp/escaped.csv", "..\\..\\escaped.csv", ""):
        status, location, _ = upload(client, token, b"phone,name\n8613900000001,Ana\n", name=name)
        if name == "":
            assert status == 400  # no file chosen
            continue
        assert status == 303
        draft = tmp_path / "out" / ".campaigner-web" / "drafts" / location.rsplit("/", 1)[1]
        assert sorted(p.name for p in draft.iterdir() if p.is_file()) == [
            "campaign.toml",
            "draft.json",
            "preview.json",
            "recipients.csv",
        ]
    assert not list(tmp_path.rglob("escaped.csv"))
    assert not Path("/tmp/escaped.csv").exists()


def test_an_upload_over_the_limit_is_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = sign_in(client)
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 10_000)
    monkeypatch.setattr(uploads, "_FORM_OVERHEAD", 0)
    big = b"phone\n" + b"8613900000001\n" * 2000
    status, _, text = upload(client, token, big)
    assert status == 413 and "MB" in text
    assert list((tmp_path / "out" / ".campaigner-web" / "drafts").iterdir()) == []


def test_no_secret_reaches_a_page(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-access-key-secret-value"
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
    token = sign_in(client)
    status, location, _ = upload(
        client,
        token,
        (SAMPLES / "recipients.csv").read_bytes(),
        campaign=(SAMPLES / "whatsapp_template.toml").read_text(),
    )
    assert status == 303
    pages = [client.get(p).text for p in ("/", "/campaigns/new", location)]
    assert all(secret not in page and PASSWORD not in page for page in pages)


# -- the fill-in form -------------------------------------------------------------------


def test_the_form_says_did_you_mean_for_an_unknown_column(client: TestClient) -> None:
    token = sign_in(client)
    _, location, _ = upload(client, token, b"phone,first_name\n8613900000001,Ana\n", campaign=None)
    fields = {
        "name": "x",
        "sender": "8613800000000",
        "template_code": "tpl",
        "recipient_column": "phone",
        "param_key_0": "name",
        "param_kind_0": "column",
        "param_value_0": "firstname",
    }
    answer = client.post(
        location.replace("/form", "/check"), data=fields, headers={"X-CSRF-Token": token}
    )
    assert "did you mean &#39;first_name&#39;?" in answer.text
    expression = {**fields, "param_kind_0": "expression", "param_value_0": "{{ frist_name }}"}
    answer = client.post(
        location.replace("/form", "/check"), data=expression, headers={"X-CSRF-Token": token}
    )
    assert "did you mean &#39;first_name&#39;?" in answer.text


def test_the_form_makes_the_campaign_file_it_previews(client: TestClient, tmp_path: Path) -> None:
    token = sign_in(client)
    _, location, _ = upload(
        client, token, b"phone,first_name\n8613900000001,Ana\nnope,Bo\n", campaign=None
    )
    fields = {
        "csrf_token": token,
        "name": "from-the-form",
        "channel": "whatsapp",
        "type": "template",
        "sender": "8613800000000",
        "template_code": "tpl",
        "language": "en",
        "recipient_column": "phone",
        "param_key_0": "name",
        "param_kind_0": "column",
        "param_value_0": "first_name",
        "param_key_1": "greeting",
        "param_kind_1": "expression",
        "param_value_1": "Hi {{ first_name | upper }}",
        "default_region": "cn",
        "qps": "100",
    }
    answer = client.post(location, data=fields, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    preview = client.get(answer.headers["location"]).text
    assert re.search(r'data-count="would_send">1<', preview)
    assert re.search(r'data-count="invalid">1<', preview)
    draft = answer.headers["location"].rsplit("/", 1)[1]
    toml = client.get(f"/drafts/{draft}/campaign.toml")
    assert "attachment" in toml.headers["content-disposition"]
    path = tmp_path / "downloaded.toml"
    path.write_bytes(toml.content)
    campaign = load_campaign(path)
    assert campaign.name == "from-the-form" and campaign.send.qps == 100
    assert campaign.send.default_region == "CN"
    assert campaign.message["TemplateParams"] == {
        "name": "{{ first_name }}",
        "greeting": "Hi {{ first_name | upper }}",
    }


@pytest.mark.parametrize(
    "text", ['quote " and \\ back', "new\nline", "del \x7f char", "ünïcödé 退订", "{{ x }}"]
)
def test_form_values_survive_the_toml(text: str) -> None:
    form = CampaignForm(
        name=text, sender=text, template_code=text, recipient_column="phone", language="en"
    )
    data = tomllib.loads(form.to_toml())
    assert data["name"] == text and data["message"]["From"] == text
    assert data["message"]["TemplateCode"] == text
    parse_campaign(data)  # the loader's own checks accept it


# -- a whole flow -----------------------------------------------------------------------


def wait_for_state(client: TestClient, url: str, states: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        match = re.search(r'id="run" data-run="[^"]*" data-state="(\w+)"', client.get(url).text)
        assert match
        state = match.group(1)
        if state in states:
            return state
        time.sleep(0.2)  # polling a page, not synchronizing threads
    raise AssertionError(f"the run stayed {state!r}")


@pytest.mark.slow
def test_preview_send_watch_and_download_against_the_simulator(tmp_path: Path) -> None:
    with make_client(tmp_path / "out", sandbox=True) as client:
        token = sign_in(client)
        status, location, text = upload(
            client,
            token,
            (SAMPLES / "recipients.csv").read_bytes(),
            campaign=(SAMPLES / "whatsapp_template.toml").read_text(),
        )
        assert status == 303, text
        preview = client.get(location).text
        counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', preview))
        would_send = int(counts["would_send"])
        assert int(counts["rows"]) == 1000 and 0 < would_send < 1000
        assert 1 <= preview.count('class="rendered-message"') <= 5
        assert f">Send {would_send} messages<" in preview
        summary = re.search(r'id="confirm-summary">([^<]*)<', preview)
        assert summary and summary.group(1).startswith(
            f"This sends {would_send} messages to {would_send} recipients from 8613800000000"
        )
        draft = location.rsplit("/", 1)[1]
        report = client.get(f"/drafts/{draft}/preview-report.csv")
        assert report.status_code == 200 and "attachment" in report.headers["content-disposition"]
        assert report.text.count("\n") == 1001

        answer = client.post(
            f"/drafts/{draft}/send", data={"csrf_token": token}, follow_redirects=False
        )
        assert answer.status_code == 303
        run_url = answer.headers["location"]
        assert re.fullmatch(r"/runs/spring-sale-[0-9TZ-]+", run_url)
        assert wait_for_state(client, run_url, {"done", "stopped"}) == "done"
        page = client.get(run_url).text
        assert f'data-count="sent">{would_send}<' in page
        assert 'data-count="remaining">0<' in page
        funnel = {k: int(v) for k, v in re.findall(r'data-funnel="(\w+)">(\d+)<', page)}
        assert set(funnel) == {"delivered", "read", "replied", "failed"}
        assert 0 < funnel["delivered"] + funnel["failed"] <= would_send  # the sandbox's receipts

        downloaded = client.get(run_url + "/report.csv")
        assert "attachment" in downloaded.headers["content-disposition"]
        run_dir = tmp_path / "out" / run_url.rsplit("/", 1)[1]
        assert downloaded.content == (run_dir / "report.csv").read_bytes()
        rows = list(csv.DictReader(io.StringIO(downloaded.content.decode("utf-8-sig"))))
        assert len(rows) == 1000
        assert sum(r["status"] == "sent" for r in rows) == would_send
        xlsx = client.get(run_url + "/report.xlsx")
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

        listing = client.get("/").text
        assert f'data-run="{run_dir.name}" data-state="done"' in listing
        # Its simulator ended with the send: nothing to look unknown rows up in.
        answer = client.post(run_url + "/reconcile", data={"csrf_token": token})
        assert answer.status_code == 409 and "sandbox simulator" in answer.text
        # A retry never leaves the sandbox for CAMS.
        answer = client.post(run_url + "/retry", data={"csrf_token": token})
        assert answer.status_code == 409 and "not from the sandbox" in answer.text
        assert [p for p in (tmp_path / "out").iterdir() if p.is_dir() and p.name[0] != "."] == [
            run_dir
        ]
        # Actions that do not fit the state say so, and change nothing.
        answer = client.post(run_url + "/pause", data={"csrf_token": token})
        assert answer.status_code == 409
        assert 'data-state="done"' in client.get(run_url).text


@pytest.mark.slow
def test_a_test_send_shows_the_answers_and_starts_no_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with make_client(out, sandbox=True) as client:
        token = sign_in(client)
        status, location, _ = upload(
            client,
            token,
            (SAMPLES / "recipients.csv").read_bytes(),
            campaign=(SAMPLES / "whatsapp_template.toml").read_text(),
        )
        assert status == 303
        test = location + "/test"
        headers = {"X-CSRF-Token": token}
        six = " ".join(f"+86138000000{n:02d}" for n in range(6))
        answer = client.post(test, data={"test_numbers": six}, headers=headers)
        assert "At most 5 numbers" in answer.text
        answer = client.post(
            test, data={"test_numbers": "+8613800000001, +8613800000002"}, headers=headers
        )
        assert answer.status_code == 200
        assert answer.text.count("sent, MessageId") == 2
        assert "8613800000001" not in answer.text  # masked
    assert [p.name for p in out.iterdir() if p.is_dir()] == [".campaigner-web"]  # no run folder


def test_run_and_draft_names_from_the_url_never_leave_the_workspace(
    client: TestClient, tmp_path: Path
) -> None:
    sign_in(client)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "journal.sqlite").write_bytes(b"")
    (tmp_path / "out" / "linked").symlink_to(tmp_path / "secret")
    for run in (".campaigner-web", "linked", "..%2Fsecret", "%2E%2E", ".%2E", "nope"):
        for suffix in ("", "/report.csv", "/events"):
            answer = client.get(f"/runs/{run}{suffix}", follow_redirects=False)
            assert answer.status_code == 404, (run, suffix)
    for draft in ("%2E%2E", "short", "x" * 100):
        answer = client.get(f"/drafts/{draft}/preview-report.csv", follow_redirects=False)
        assert answer.status_code == 404, draft


@pytest.mark.slow
def test_a_sandbox_run_is_never_resumed_to_cams_nor_a_cams_run_to_the_sandbox(
    tmp_path: Path,
) -> None:
    from campaigner import api

    out = tmp_path / "out"
    control = api.RunControl()
    control.stop("paused")  # stopped before its first row: everything left to send
    options = api.SendOptions(SAMPLES / "whatsapp_template.toml", out=out, sandbox=True, yes=True)
    paused = api.send(options, control=control)
    assert paused.stop_reason == "paused"
    run_url = f"/runs/{paused.run_dir.name}"
    with make_client(out) as client:  # sends to CAMS
        token = sign_in(client)
        assert 'data-state="paused"' in client.get(run_url).text
        answer = client.post(run_url + "/resume", data={"csrf_token": token})
        assert answer.status_code == 409 and "sent to sandbox" in answer.text
        assert 'data-state="paused"' in client.get(run_url).text
    with make_client(out, sandbox=True) as client:
        token = sign_in(client)
        answer = client.post(
            run_url + "/resume", data={"csrf_token": token}, follow_redirects=False
        )
        assert answer.status_code == 303
        assert wait_for_state(client, run_url, {"done", "stopped"}) == "done"
