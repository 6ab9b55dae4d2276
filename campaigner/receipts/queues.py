"""``campaigner receive --queue``: receipts and inbound messages from the account's SMQ (MNS)
queues instead of HTTP callbacks, with the official packages.

For each queue (``Alicom-Queue-<uid>-ChatAppStatus`` and ``-ChatAppInbound``) one thread:
temporary credentials from dybaseapi ``QueryTokenForMnsQueue``, refreshed ``REFRESH_BEFORE_S``
before they expire; MNS ``BatchReceiveMessage`` with a long poll; every body parsed (JSON,
or base64 of JSON: the documentation does not say which) and stored durably; only then
``BatchDeleteMessage`` of what was stored. A crash between the two means the queue delivers
it again after its visibility timeout, and the store keeps the repeat once. A body that is
not receipts stays in the queue (logged by its MNS message id) rather than being lost.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from campaigner.errors import ReceiptFormatError, ReceiverError, StorageError
from campaigner.receipts.parse import parse_inbound_body, parse_status_body
from campaigner.receipts.store import ReceiptStore, Stored

__all__ = (
    "DEFAULT_MNS_ENDPOINT",
    "DEFAULT_TOKEN_ENDPOINT",
    "QueueSettings",
    "consume_queues",
    "queue_names",
)

logger = logging.getLogger(__name__)

# Alibaba's documented endpoints for the Alicom queues (China site); others via options.
DEFAULT_MNS_ENDPOINT = "https://1943695596114318.mns.cn-hangzhou.aliyuncs.com"
DEFAULT_TOKEN_ENDPOINT = "https://dybaseapi.aliyuncs.com"  # noqa: S105 (a host, not a secret)
REFRESH_BEFORE_S = 120.0
_BATCH = 16  # MNS' batch limit
_WAIT_S = 3  # long poll
_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
# Alibaba's China-region APIs write times without a zone, in UTC+8.
_CHINA = timezone(timedelta(hours=8))
_EXPIRED = frozenset({"SecurityTokenExpired", "InvalidSecurityToken.Expired", "AccessDenied"})

Kind = str  # "ChatAppStatus" | "ChatAppInbound"


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Where the queues are and the account key that may ask for their credentials."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    status_queue: str
    inbound_queue: str
    mns_endpoint: str = DEFAULT_MNS_ENDPOINT
    token_endpoint: str = DEFAULT_TOKEN_ENDPOINT
    wait_s: int = _WAIT_S


def queue_names(account_uid: str) -> tuple[str, str]:
    """The status and inbound queue names of an Alibaba Cloud account."""
    uid = account_uid.strip()
    if not uid.isdigit():
        raise ReceiverError(f"--account-uid {account_uid!r}: the account ID is digits")
    return f"Alicom-Queue-{uid}-ChatAppStatus", f"Alicom-Queue-{uid}-ChatAppInbound"


@dataclass
class _Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str
    refresh_at: float  # monotonic


def _expiry_s(text: object) -> float:
    """Seconds until an ``ExpireTime``; unknown forms count as 5 minutes (refresh early)."""
    if isinstance(text, str):
        for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
            try:
                moment = datetime.strptime(text.strip(), form)
            except ValueError:
                continue
            zone = UTC if form.endswith("Z") else _CHINA
            return moment.replace(tzinfo=zone).timestamp() - time.time()
    return 300.0


def _token_client(settings: QueueSettings) -> Any:
    from alibabacloud_dybaseapi20170525.client import Client
    from alibabacloud_tea_openapi import models as open_api_models

    scheme, _, host = settings.token_endpoint.rpartition("://")
    config = open_api_models.Config(
        access_key_id=settings.access_key_id,
        access_key_secret=settings.access_key_secret,
        endpoint=host,
        protocol=scheme or "https",
    )
    return Client(config)


def _fetch_credentials(client: Any, kind: Kind, queue: str) -> _Credentials:
    from alibabacloud_dybaseapi20170525 import models

    request = models.QueryTokenForMnsQueueRequest(message_type=kind, queue_name=queue)
    body = client.query_token_for_mns_queue(request).body
    if body.code != "OK" or body.message_token_dto is None:
        raise ReceiverError(f"QueryTokenForMnsQueue for {queue}: {body.code} {body.message}")
    dto = body.message_token_dto
    lasts = _expiry_s(dto.expire_time)
    return _Credentials(
        dto.access_key_id,
        dto.access_key_secret,
        dto.security_token,
        time.monotonic() + max(lasts - REFRESH_BEFORE_S, min(lasts / 2, 60.0), 1.0),
    )


def _decode(body: bytes | str) -> Sequence[bytes]:
    """The body as JSON bytes to try: as it is, then base64-decoded."""
    raw = body.encode() if isinstance(body, str) else body
    tries = [raw]
    try:
        tries.append(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        pass
    return tries


def _parse(kind: Kind, body: bytes | str) -> tuple[list[Any], list[Any]] | None:
    for candidate in _decode(body):
        try:
            if kind.endswith("Status"):
                return parse_status_body(candidate), []
            return [], parse_inbound_body(candidate)
        except ReceiptFormatError:
            continue
    return None


class _Consumer:
    def __init__(
        self,
        workspace: Any,
        settings: QueueSettings,
        kind: Kind,
        queue: str,
        stop: threading.Event,
        on_stored: Callable[[Kind, Stored], None],
    ) -> None:
        self.workspace = workspace
        self.settings = settings
        self.kind = kind
        self.queue_name = queue
        self.stop = stop
        self.on_stored = on_stored
        self.credentials: _Credentials | None = None
        self.queue: Any = None
        self.refused: set[str] = set()

    def _connect(self) -> None:
        from mns.account import Account

        credentials = _fetch_credentials(_token_client(self.settings), self.kind, self.queue_name)
        account = Account(
            self.settings.mns_endpoint,
            credentials.access_key_id,
            credentials.access_key_secret,
            credentials.security_token,
        )
        queue = account.get_queue(self.queue_name)
        queue.set_encoding(False)  # bodies as they are: _decode tries base64 itself
        self.credentials, self.queue = credentials, queue

    def run(self) -> None:
        from mns.mns_exception import MNSClientException, MNSServerException

        failures = 0
        with ReceiptStore.open(self.workspace) as store:
            while not self.stop.is_set():
                try:
                    if self.credentials is None or time.monotonic() >= self.credentials.refresh_at:
                        self._connect()
                    self._once(store)
                    failures = 0
                except MNSServerException as exc:
                    if exc.type == "MessageNotExist":
                        failures = 0
                        continue
                    if exc.type in _EXPIRED:
                        self.credentials = None
                    failures = self._failed(failures, f"{exc.type}: {exc.message}")
                except (MNSClientException, ReceiverError, StorageError, OSError) as exc:
                    self.credentials = None if isinstance(exc, ReceiverError) else self.credentials
                    failures = self._failed(failures, str(exc).strip())
                except Exception as exc:  # the token client's own errors (TeaException ...)
                    self.credentials = None
                    failures = self._failed(failures, f"{type(exc).__name__}: {exc}")

    def _failed(self, failures: int, what: str) -> int:
        delay = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
        logger.warning("queue %s: %s; again in %.1f s", self.queue_name, what, delay)
        self.stop.wait(delay)
        return failures + 1

    def _once(self, store: ReceiptStore) -> None:
        messages = self.queue.batch_receive_message(_BATCH, self.settings.wait_s)
        receipts: list[Any] = []
        inbound: list[Any] = []
        handles: list[str] = []
        for message in messages:
            parsed = _parse(self.kind, message.message_body)
            if parsed is None:
                if message.message_id not in self.refused:
                    self.refused.add(message.message_id)
                    logger.warning(
                        "queue %s: message %s is not receipts; left in the queue",
                        self.queue_name,
                        message.message_id,
                    )
                continue
            receipts.extend(parsed[0])
            inbound.extend(parsed[1])
            handles.append(message.receipt_handle)
        if not handles:
            return
        stored = store.add(receipts, inbound, source="queue")  # durable on return
        self.queue.batch_delete_message(handles)
        self.on_stored(self.kind, stored)


def consume_queues(
    workspace: Any,
    settings: QueueSettings,
    stop: threading.Event,
    on_stored: Callable[[Kind, Stored], None] = lambda kind, stored: None,
) -> None:
    """Consume both queues until ``stop`` is set (one thread each); returns when both ended."""
    ReceiptStore.open(workspace).close()  # an unusable workspace fails here, not in a thread
    threads = [
        threading.Thread(
            target=_Consumer(workspace, settings, kind, queue, stop, on_stored).run,
            name=f"queue-{kind}",
            daemon=True,
        )
        for kind, queue in (
            ("ChatAppStatus", settings.status_queue),
            ("ChatAppInbound", settings.inbound_queue),
        )
    ]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=settings.wait_s + 30)
