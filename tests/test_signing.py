"""ACS3-HMAC-SHA256 signing: golden vectors from the official SDK, encoding, verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigner.errors import CredentialsError
from campaigner.signing import (
    EMPTY_SHA256,
    Credentials,
    VerifyError,
    canonical_query,
    check_date,
    format_date,
    parse_authorization,
    parse_wire_query,
    percent_encode,
    sign_request,
    verify_authorization,
)

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sdk-capture"
TEST_CREDS = Credentials("testAccessKeyId", "testAccessKeySecret")
FIXED_DATE = "2026-01-01T00:00:00Z"
FIXED_NONCE = "0123456789abcdef0123456789abcdef"
SDK_UA = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"
# Headers the HTTP stack adds after signing; the SDK does not sign them.
UNSIGNED_TRANSPORT_HEADERS = {"authorization", "content-length", "accept-encoding"}

VECTOR_A_QUERY = {
    "ChannelType": "whatsapp",
    "From": "8613800000000",
    "Language": "en",
    "Payload": '["p1","p2"]',
    "TaskId": "task-0001",
    "TemplateCode": "744c4b5c79c9432497a075bdfca3****",
    "TemplateParams": '{"name":"Ana","code":"X1"}',
    "To": "8613900000000",
    "Type": "template",
}
VECTOR_E_QUERY = {
    "ChannelType": "whatsapp",
    "From": "+8613800000000",
    "Language": "pt_BR",
    "TaskId": "t 1",
    "TemplateCode": "tpl-enc",
    "TemplateParams": '{"name":"Ana Maria","greet":"Olá ~ a+b=c&d 😀 50%"}',
    "To": "+8613900000000",
    "Type": "template",
}


def _load(name: str) -> dict[str, Any]:
    path = CAPTURES / name
    if not path.exists():
        pytest.skip(f"reference capture {path} not present")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _capture_files() -> list[Path]:
    if not CAPTURES.is_dir():
        return []
    return sorted(
        p for p in CAPTURES.glob("*.json") if "signing" in json.loads(p.read_text("utf-8"))
    )


# ------------------------------------------ golden vectors (docs/wire-format.md#test-vectors)


@pytest.mark.parametrize(
    ("query", "stringtosign_hash", "sig"),
    [
        pytest.param(
            VECTOR_A_QUERY,
            "3422f3f553a67f9128c5da2c9426bf8f8a8b216299c95f33a88f1ef00ed3a727",
            "72a1ea64447f790a583476294a82075b8baea614231a9ca2f6dc72fd3d0bc2fa",
            id="vector-A",
        ),
        pytest.param(
            VECTOR_E_QUERY,
            "7e9cbdf2138d33a481b5e9693d0b6b400de0758e36920e59c86ed99a7024ecb1",
            "da16c222ee1a03c908dd71334090f658f970d3e4f81162fc19e2f51ca285814a",
            id="vector-E-encoding",
        ),
    ],
)
def test_sdk_vectors_full_header_set(
    query: dict[str, str], stringtosign_hash: str, sig: str
) -> None:
    signed = sign_request(
        method="POST",
        host="cams.ap-southeast-1.aliyuncs.com",
        query=query,
        credentials=TEST_CREDS,
        date=FIXED_DATE,
        nonce=FIXED_NONCE,
        user_agent=SDK_UA,
        extra_headers={"x-acs-credentials-provider": "static_ak"},
    )
    assert signed.string_to_sign == f"ACS3-HMAC-SHA256\n{stringtosign_hash}"
    assert signed.authorization == (
        "ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders=accept;host;user-agent;"
        "x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;"
        f"x-acs-signature-nonce;x-acs-version,Signature={sig}"
    )
    assert signed.headers["Authorization"] == signed.authorization


def test_sdk_vector_a_minimal_headers() -> None:
    signed = sign_request(
        method="POST",
        host="cams.ap-southeast-1.aliyuncs.com",
        query=VECTOR_A_QUERY,
        credentials=TEST_CREDS,
        date=FIXED_DATE,
        nonce=FIXED_NONCE,
        accept=None,
    )
    assert signed.string_to_sign == (
        "ACS3-HMAC-SHA256\n88fcffcf81828e49a2b18950845aac30a9d3d4eda0376315b333486d282468f2"
    )
    assert signed.authorization.endswith(
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;"
        "x-acs-signature-nonce;x-acs-version,"
        "Signature=3432c862357a51a39b83fb82dda37c900b02a51e928ad371186132dfbcd09b16"
    )
    assert set(signed.headers) == {
        "host",
        "x-acs-action",
        "x-acs-version",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
        "Authorization",
    }


def test_vector_a_minimal_matches_its_capture_file() -> None:
    vec = _load("signature-vector-a-minimal-headers.json")
    h = vec["headers"]
    signed = sign_request(
        method=vec["method"],
        host=h["host"],
        query=dict(vec["query"]),
        credentials=Credentials(vec["access_key_id"], vec["access_key_secret"]),
        date=h["x-acs-date"],
        nonce=h["x-acs-signature-nonce"],
        action=h["x-acs-action"],
        version=h["x-acs-version"],
        accept=None,
    )
    assert signed.canonical_request == vec["canonical_request"]
    assert signed.string_to_sign == vec["string_to_sign"]
    assert signed.authorization == vec["authorization"]


@pytest.mark.parametrize("path", _capture_files(), ids=lambda p: p.stem)
def test_every_sdk_capture_reproduced(path: Path) -> None:
    """For each request the SDK sent, rebuild canonical request and Authorization from inputs."""
    data = json.loads(path.read_text(encoding="utf-8"))
    assert len(data["requests"]) == len(data["signing"])
    for request, expected in zip(data["requests"], data["signing"], strict=True):
        headers = {n.lower(): v for n, v in request["headers"]}
        core = {
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
            "accept",
            "user-agent",
        }
        extra = {n: v for n, v in headers.items() if n not in core | UNSIGNED_TRANSPORT_HEADERS}
        signed = sign_request(
            method=request["method"],
            host=headers["host"],
            query=dict(request["query"]),
            credentials=TEST_CREDS,
            date=headers["x-acs-date"],
            nonce=headers["x-acs-signature-nonce"],
            action=headers["x-acs-action"],
            version=headers["x-acs-version"],
            accept=headers.get("accept"),
            user_agent=headers.get("user-agent"),
            extra_headers=extra,
        )
        assert signed.canonical_request == expected["canonical_request"]
        assert signed.string_to_sign == expected["string_to_sign"]
        assert signed.authorization == expected["authorization"]
        assert signed.authorization == headers["authorization"]
        assert sorted(signed.headers) == sorted(
            n for n in [*headers, "Authorization"] if n not in UNSIGNED_TRANSPORT_HEADERS
        )


@pytest.mark.parametrize("path", _capture_files(), ids=lambda p: p.stem)
def test_every_sdk_capture_verifies_from_its_raw_wire_query(path: Path) -> None:
    """The server side accepts the SDK's own wire form ('+' for spaces) for every capture."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for request in data["requests"]:
        result = verify_authorization(
            method=request["method"],
            path=request["path"],
            raw_query=request["raw_query"],
            headers=[(n, v) for n, v in request["headers"]],
            body=request["body"].encode(),
            lookup_secret={"testAccessKeyId": "testAccessKeySecret"}.get,
        )
        assert result.ok, result.error
        assert result.params == dict(request["query"])


# ---------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("abcXYZ019-_.~", "abcXYZ019-_.~"),
        (" ", "%20"),
        ("*", "%2A"),
        ("+", "%2B"),
        ("/", "%2F"),
        ("a+b=c&d", "a%2Bb%3Dc%26d"),
        ("50%", "50%25"),
        ("Olá", "Ol%C3%A1"),
        ("😀", "%F0%9F%98%80"),
        ("", ""),
    ],
)
def test_percent_encode_table(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


@given(st.text())
def test_percent_encode_equals_rfc3986_quote(value: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:  # lone surrogates cannot be sent at all
        return
    assert percent_encode(value) == quote(value, safe="-_.~")


def test_canonical_query_sorts_and_drops_none() -> None:
    assert canonical_query({"b": "2", "a": "x y", "Z": "*", "c": None, "e": ""}) == (
        "Z=%2A&a=x%20y&b=2&e="
    )


@given(st.dictionaries(st.text(min_size=1), st.text()))
def test_wire_query_roundtrip(params: dict[str, str]) -> None:
    """Both our canonical query and the SDK's urlencode (quote_plus) form decode to the input."""
    try:
        canonical = canonical_query(params)
    except UnicodeEncodeError:
        return
    assert parse_wire_query(canonical) == params
    assert parse_wire_query(urlencode(sorted(params.items()))) == params


# ---------------------------------------------------------------- credentials


def test_credentials_repr_masks_secrets() -> None:
    creds = Credentials("LTAI_CANARY_KEYID", "SECRET_CANARY_VALUE", "TOKEN_CANARY_VALUE")
    shown = repr(creds) + str(creds)
    assert "LTAI" in shown
    for secret in ("CANARY_KEYID", "SECRET_CANARY", "TOKEN_CANARY"):
        assert secret not in shown


def test_credentials_from_env() -> None:
    creds = Credentials.from_env(
        {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sec",
            "ALIBABA_CLOUD_SECURITY_TOKEN": "tok",
        }
    )
    assert creds == Credentials("id", "sec", "tok")
    assert Credentials.from_env(
        {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sec"}
    ) == Credentials("id", "sec", None)


def test_credentials_from_env_names_missing_variables_not_values() -> None:
    with pytest.raises(CredentialsError) as info:
        Credentials.from_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI_CANARY_ID"})
    message = str(info.value)
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in message
    assert "LTAI_CANARY_ID" not in message
    with pytest.raises(CredentialsError, match="ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        Credentials.from_env({})


def test_sts_headers_are_sent_and_signed() -> None:
    signed = sign_request(
        method="POST",
        host="h",
        query={"To": "1"},
        credentials=Credentials("id", "sec", "tok"),
        date=FIXED_DATE,
        nonce=FIXED_NONCE,
    )
    assert signed.headers["x-acs-security-token"] == "tok"
    assert signed.headers["x-acs-accesskey-id"] == "id"
    assert "x-acs-accesskey-id;x-acs-action" in signed.authorization
    assert "x-acs-security-token" in signed.authorization


# ---------------------------------------------------------------- verification


def _signed(**overrides: Any) -> tuple[str, dict[str, str]]:
    args: dict[str, Any] = {
        "method": "POST",
        "host": "127.0.0.1:8080",
        "query": VECTOR_E_QUERY,
        "credentials": TEST_CREDS,
        "date": FIXED_DATE,
        "nonce": FIXED_NONCE,
    }
    args.update(overrides)
    s = sign_request(**args)
    return s.query, dict(s.headers)


def _verify(query: str, headers: dict[str, str], body: bytes = b"") -> VerifyError | None:
    return verify_authorization(
        method="POST",
        path="/",
        raw_query=query,
        headers=list(headers.items()),
        body=body,
        lookup_secret={"testAccessKeyId": "testAccessKeySecret"}.get,
    ).error


def test_verify_accepts_own_signature() -> None:
    query, headers = _signed()
    assert _verify(query, headers) is None


def test_verify_rejects_wrong_secret() -> None:
    query, headers = _signed(credentials=Credentials("testAccessKeyId", "wrong"))
    assert _verify(query, headers) is VerifyError.SIGNATURE_MISMATCH


def test_verify_rejects_unknown_key() -> None:
    query, headers = _signed(credentials=Credentials("nobody", "x"))
    assert _verify(query, headers) is VerifyError.UNKNOWN_ACCESS_KEY


def test_verify_rejects_tampered_query_and_headers() -> None:
    query, headers = _signed()
    assert _verify(query.replace("To=%2B86139", "To=%2B86138"), headers) is (
        VerifyError.SIGNATURE_MISMATCH
    )
    assert _verify(query, {**headers, "x-acs-date": "2026-01-01T00:00:01Z"}) is (
        VerifyError.SIGNATURE_MISMATCH
    )
    assert _verify(query, {**headers, "x-acs-extra": "1"}) is VerifyError.UNSIGNED_HEADER
    assert _verify(query, headers, body=b"x") is VerifyError.CONTENT_SHA256_MISMATCH


def test_verify_missing_or_malformed_authorization() -> None:
    query, headers = _signed()
    del headers["Authorization"]
    assert _verify(query, headers) is VerifyError.MISSING_AUTHORIZATION
    assert _verify(query, {**headers, "Authorization": "HMAC x"}) is (
        VerifyError.MALFORMED_AUTHORIZATION
    )


def test_parse_authorization() -> None:
    parsed = parse_authorization("ACS3-HMAC-SHA256 Credential=k,SignedHeaders=a;b,Signature=ff")
    assert parsed is not None
    assert parsed.access_key_id == "k"
    assert parsed.signed_headers == ("a", "b")
    assert parsed.signature == "ff"
    assert parse_authorization("ACS3-HMAC-SHA256 Credential=k") is None


def test_check_date() -> None:
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert format_date(now) == FIXED_DATE
    assert check_date(FIXED_DATE, now) is None
    assert check_date(FIXED_DATE, now + 899) is None
    assert check_date(FIXED_DATE, now + 901) == "expired"
    assert check_date(FIXED_DATE, now - 901) == "expired"
    assert check_date("2026-01-01 00:00:00", now) == "format"
    assert check_date(None, now) == "missing"
    assert EMPTY_SHA256.startswith("e3b0c442")
