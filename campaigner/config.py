"""The campaign file (TOML): parsing and checking, pure apart from ``load_campaign``.

The campaign file is the interface users script against, so its names are stable:
top-level ``name``, ``input``, ``sheet``, ``encoding``; a ``[send]`` table; and a
``[message]`` table holding ``SendChatappMessage`` parameters in the API's own spelling,
every string of which is a Jinja template rendered against the row.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from campaigner.channels import PARAMETERS, unknown_keys
from campaigner.errors import ConfigError
from campaigner.limits import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_OUTAGE_LIMIT_S,
    DEFAULT_TIMEOUT_S,
    MAX_CAMPAIGN_BYTES,
    MAX_QPS,
)
from campaigner.phones import AMBIGUITY_CHOICES, Ambiguity
from campaigner.spelling import closest
from campaigner.windows import SendWindow, parse_deadline

__all__ = (
    "Campaign",
    "SendSettings",
    "load_campaign",
    "parse_campaign",
)

_TOP_KEYS = ("name", "input", "sheet", "encoding", "send", "message")
_SEND_KEYS = (
    "qps",
    "default_region",
    "ambiguous",
    "max_attempts",
    "timeout_s",
    "outage_limit_s",
    "stop_words",
    "window",
    "timezone_column",
    "deadline",
)
# Parameters that hold structures; the rest are scalars (strings or integers).
_OBJECT_PARAMS = ("TemplateParams", "Payload", "Content", "ProductAction", "FlowAction")


@dataclass(frozen=True, slots=True)
class SendSettings:
    qps: int = MAX_QPS
    default_region: str | None = None
    # digits valid both as a default_region number and with a country code: "reject",
    # or send the "region" or the "country_code" reading
    ambiguous: Ambiguity = "reject"
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # for answers that provably were not accepted
    timeout_s: float = DEFAULT_TIMEOUT_S  # read timeout per request; a timeout is `unknown`
    outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S  # give up (resumable) after this outage
    # replies that opt a recipient out, besides the default stop words (screening.py)
    stop_words: tuple[str, ...] = ()
    # when rows may be sent, in each recipient's local time (windows.py); None: any time
    window: SendWindow | None = None
    timezone_column: str | None = None  # a column naming each row's time zone
    deadline: datetime | None = None  # (UTC) rows not sent by then are not sent


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    message: Mapping[str, Any]  # API spelling, values as written in the file (templates)
    send: SendSettings = field(default_factory=SendSettings)
    input: Path | None = None  # resolved against the campaign file's folder
    sheet: str | int | None = None
    encoding: str | None = None
    warnings: tuple[str, ...] = ()
    source: Path | None = None


def _unknown_key(key: str, where: str, valid: tuple[str, ...]) -> ConfigError:
    hint = closest(key, valid)
    suggestion = f"; did you mean '{hint}'?" if hint else ""
    return ConfigError(f"unknown key '{key}' in {where}{suggestion}")


def _check_keys(table: Mapping[str, Any], where: str, valid: tuple[str, ...]) -> None:
    for key in table:
        if key not in valid:
            raise _unknown_key(key, where, valid)


def _parse_send(raw: object) -> SendSettings:
    if raw is None:
        return SendSettings()
    if not isinstance(raw, Mapping):
        raise ConfigError("[send] must be a table")
    _check_keys(raw, "[send]", _SEND_KEYS)
    qps = raw.get("qps", MAX_QPS)
    if not isinstance(qps, int) or isinstance(qps, bool) or not 1 <= qps <= MAX_QPS:
        raise ConfigError(f"[send] qps must be a whole number from 1 to {MAX_QPS} (got {qps!r})")
    region = raw.get("default_region")
    if region is not None:
        if not isinstance(region, str) or len(region) != 2 or not region.isalpha():
            raise ConfigError(
                f'[send] default_region must be a two-letter country code like "CN" '
                f"(got {region!r})"
            )
        region = region.upper()
    ambiguous = raw.get("ambiguous", "reject")
    if ambiguous not in AMBIGUITY_CHOICES:
        choices = ", ".join(f'"{c}"' for c in AMBIGUITY_CHOICES)
        raise ConfigError(f"[send] ambiguous must be one of {choices} (got {ambiguous!r})")
    attempts = raw.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 20:
        raise ConfigError(f"[send] max_attempts must be from 1 to 20 (got {attempts!r})")
    timeout = raw.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 1 <= timeout <= 120:
        raise ConfigError(f"[send] timeout_s must be from 1 to 120 seconds (got {timeout!r})")
    outage = raw.get("outage_limit_s", DEFAULT_OUTAGE_LIMIT_S)
    if not isinstance(outage, int | float) or isinstance(outage, bool) or not 1 <= outage <= 86400:
        raise ConfigError(f"[send] outage_limit_s must be from 1 to 86400 seconds (got {outage!r})")
    stop_words = raw.get("stop_words", [])
    if not isinstance(stop_words, list) or not all(
        isinstance(w, str) and w.strip() for w in stop_words
    ):
        raise ConfigError(
            '[send] stop_words must be a list of non-empty strings, e.g. ["STOP", "ALTO"]'
        )
    window = raw.get("window")
    if window is not None and not isinstance(window, str):
        raise ConfigError('[send] window must be a string like "09:00-20:00"')
    tz_column = raw.get("timezone_column")
    if tz_column is not None and (not isinstance(tz_column, str) or not tz_column.strip()):
        raise ConfigError('[send] timezone_column must be a column name, e.g. "timezone"')
    deadline = raw.get("deadline")
    return SendSettings(
        qps=qps,
        default_region=region,
        ambiguous=ambiguous,
        max_attempts=attempts,
        timeout_s=float(timeout),
        outage_limit_s=float(outage),
        stop_words=tuple(w.strip() for w in stop_words),
        window=None if window is None else SendWindow.parse(window),
        timezone_column=None if tz_column is None else tz_column.strip(),
        deadline=None if deadline is None else parse_deadline(deadline),
    )


def _check_template_params(params: Mapping[str, Any]) -> None:
    """The API takes TemplateParams as text to text: any other TOML value would go out in
    Python's spelling of it ("True", "{'a': 'b'}")."""
    for key, value in params.items():
        if isinstance(value, str):
            continue
        if isinstance(value, Mapping | list):
            kind = "a table" if isinstance(value, Mapping) else "an array"
            raise ConfigError(f"[message] TemplateParams.{key} must be a string, not {kind}")
        spelled = str(value).lower() if isinstance(value, bool) else str(value)
        raise ConfigError(
            f'[message] TemplateParams.{key} must be a string; quote it: {key} = "{spelled}"'
        )


def _check_value(name: str, value: object) -> None:
    """Shape checks: templates are strings; structures are tables or arrays."""
    if name in _OBJECT_PARAMS:
        if name == "Payload":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError("[message] Payload must be an array of strings")
        elif name == "Content":
            if not isinstance(value, str | Mapping | list):
                raise ConfigError("[message] Content must be a table, an array or a string")
        elif not isinstance(value, Mapping):
            raise ConfigError(f"[message] {name} must be a table")
        elif name == "TemplateParams":
            _check_template_params(value)
        return
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f"[message] {name} must be a string or a whole number")


def parse_campaign(data: Mapping[str, Any], *, base_dir: Path | None = None) -> Campaign:
    """Check a parsed campaign mapping and return a Campaign. Pure."""
    _check_keys(data, "the campaign file", _TOP_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError('the campaign file needs a name, e.g. name = "spring-sale"')
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    message = data.get("message")
    if not isinstance(message, Mapping) or not message:
        raise ConfigError("the campaign file needs a [message] table with the message parameters")
    valid = tuple(PARAMETERS)
    warnings: list[str] = []
    for key, value in message.items():
        spec = PARAMETERS.get(key)
        if spec is None:
            raise _unknown_key(key, "[message]", valid)
        if spec.deprecated:
            warnings.append(f"[message] {key} is deprecated by the API; see its documentation")
        _check_value(key, value)
        for where, inner, hint in unknown_keys(key, value):  # ProductAction, FlowAction
            suggestion = f"; did you mean '{hint}'?" if hint else ""
            raise ConfigError(f"unknown key '{inner}' in [message] {where}{suggestion}")
    raw_input = data.get("input")
    input_path: Path | None = None
    if raw_input is not None:
        if not isinstance(raw_input, str) or not raw_input:
            raise ConfigError("input must be a file path string")
        input_path = Path(raw_input)
        if base_dir is not None and not input_path.is_absolute():
            input_path = base_dir / input_path
    sheet = data.get("sheet")
    if sheet is not None and (isinstance(sheet, bool) or not isinstance(sheet, str | int)):
        raise ConfigError("sheet must be a sheet name or a 0-based sheet number")
    encoding = data.get("encoding")
    if encoding is not None:
        if not isinstance(encoding, str):
            raise ConfigError('encoding must be a string such as "latin-1"')
        try:
            "".encode(encoding)
        except LookupError:
            raise ConfigError(f"unknown encoding {encoding!r}") from None
    return Campaign(
        name=safe,
        message=dict(message),
        send=_parse_send(data.get("send")),
        input=input_path,
        sheet=sheet,
        encoding=encoding,
        warnings=tuple(warnings),
    )


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _read_campaign_bytes(path: Path) -> bytes:
    """A regular file's bytes, at most MAX_CAMPAIGN_BYTES.

    A FIFO would block the open (and the read) forever and /dev/zero never ends, so the
    file is opened without blocking and checked with fstat before anything is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"campaign file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read campaign file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        kind = _not_regular(info.st_mode)
        if kind is not None:
            raise ConfigError(f"campaign file {path} is {kind}, not a regular file")
        limit = MAX_CAMPAIGN_BYTES
        if info.st_size > limit:
            raise ConfigError(
                f"campaign file {path} is {info.st_size:,} bytes; the limit is {limit:,} (1 MiB)"
            )
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(limit + 1)  # a file that grows meanwhile is still bounded
    except OSError as exc:
        raise ConfigError(f"cannot read campaign file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise ConfigError(f"campaign file {path} is larger than {limit:,} bytes (1 MiB)")
    return raw


def load_campaign(path: Path) -> Campaign:
    """Read and check a campaign file (a regular file of at most 1 MiB)."""
    raw = _read_campaign_bytes(path)
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    campaign = parse_campaign(data, base_dir=path.resolve().parent)
    return replace(campaign, source=path)
