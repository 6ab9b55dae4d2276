"""Every file of the shared bad-input corpus uploaded through the web app, as a list to fill
a form for and as a list for a campaign file: a page or a one-line refusal, never a crash
(500), and the file's name never shown unescaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from campaigner.web import Web, create_app
from tests.conftest import CORPUS
from tests.samples import campaign_toml
from tests.test_corpus import FILES, corpus_files

PASSWORD = "corpus password"
CAMPAIGN = campaign_toml("corpus", send='default_region = "CN"', params=False)


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    out = tmp_path_factory.mktemp("corpus") / "out"
    web = Web(out, environ={"CAMPAIGNER_WEB_PASSWORD": PASSWORD})
    with TestClient(create_app(web, environ={}), raise_server_exceptions=False) as client:
        token = re.findall(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text)[0]
        client.post("/signin", data={"csrf_token": token, "password": PASSWORD})
        page = client.get("/campaigns/new").text
        yield client, re.findall(r'name="csrf_token" value="([^"]+)"', page)[0]


def _answered(answer_status: int, text: str) -> None:
    assert answer_status in (200, 303, 400), (answer_status, text[:300])
    assert "Traceback" not in text and "Internal Server Error" not in text


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_a_corpus_file_gets_a_page_or_a_one_line_refusal(
    signed_in: tuple[TestClient, str], path: Path
) -> None:
    client, token = signed_in
    data = path.read_bytes()
    answer = client.post(
        "/campaigns/new",
        data={"csrf_token": token},
        files={"recipients": (path.name, data, "application/octet-stream")},
        follow_redirects=False,
    )
    _answered(answer.status_code, answer.text)
    if answer.status_code == 303:
        form = client.get(answer.headers["location"])
        _answered(form.status_code, form.text)
    answer = client.post(
        "/campaigns/new",
        data={"csrf_token": token},
        files={
            "recipients": (path.name, data, "application/octet-stream"),
            "campaign": ("c.toml", CAMPAIGN.encode(), "application/toml"),
        },
        follow_redirects=False,
    )
    _answered(answer.status_code, answer.text)
    if answer.status_code == 400:
        [error] = re.findall(r'<p class="error" role="alert">(.*?)</p>', answer.text, re.S)
        assert error.strip()  # one message (cells and names in it may hold line breaks)
    else:
        preview = client.get(answer.headers["location"])
        _answered(preview.status_code, preview.text)


def test_the_corpus_list_is_the_corpus_tests_list() -> None:
    assert corpus_files() == FILES
