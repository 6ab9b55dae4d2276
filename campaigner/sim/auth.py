"""Who may call and how often: the V3 signature, the date, nonce and STS-token checks, and
per-key, per-action flow control (docs/simulator.md#pipeline, steps 2 and 3).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from campaigner import signing
from campaigner.sim.exchange import MESSAGE_LIMIT, Request
from campaigner.sim.faults import SimulatorConfig

__all__ = ("SIGNATURE_ERRORS", "THROTTLED", "Caller", "Gatekeeper", "Refusal")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the gatekeeper turned away: answer it with this status, Code and Message."""

    status: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Caller:
    """A request the gatekeeper let through: whose key it was signed with, and its parameters."""

    access_key_id: str
    params: dict[str, str]


THROTTLED = Refusal(400, "System.LimitControl", MESSAGE_LIMIT)
_INCOMPLETE = "The request signature does not conform to Aliyun standards."
# Each verification failure as the gateway answers it: (HTTP status, Code, Message).
SIGNATURE_ERRORS: Mapping[signing.VerifyError, tuple[int, str, str]] = {
    signing.VerifyError.MISSING_AUTHORIZATION: (400, "IncompleteSignature", _INCOMPLETE),
    signing.VerifyError.MALFORMED_AUTHORIZATION: (400, "IncompleteSignature", _INCOMPLETE),
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


class Gatekeeper:
    """Checks each request's signature, date, nonce and token, then the flow-control quota."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._quota: dict[tuple[str, str], deque[float]] = {}
        self._nonces: set[tuple[str, str]] = set()
        self._nonce_order: deque[tuple[float, tuple[str, str]]] = deque()

    def check(self, request: Request, headers: Mapping[str, str], action: str) -> Caller | Refusal:
        """Let ``request`` (its first header values in ``headers``) through, or refuse it."""
        verdict = signing.verify_authorization(
            method=request.method,
            path=request.path,
            raw_query=request.query,
            headers=request.headers,
            body=request.body,
            lookup_secret=self._config.credentials.get,
        )
        if verdict.error is not None:
            status, code, message = SIGNATURE_ERRORS[verdict.error]
            if verdict.error is signing.VerifyError.SIGNATURE_MISMATCH and verdict.string_to_sign:
                message = f"{message} server string to sign is:{verdict.string_to_sign}"
            return Refusal(status, code, message)
        key_id = verdict.access_key_id or ""
        refused = self._check_replay(headers, key_id, request.arrived_wall)
        if refused is not None:
            return refused
        if not self._admit(key_id, action, request.arrived):
            return THROTTLED
        return Caller(key_id, verdict.params)

    def _check_replay(
        self, headers: Mapping[str, str], key_id: str, now_wall: float
    ) -> Refusal | None:
        config = self._config
        problem = signing.check_date(headers.get("x-acs-date"), now_wall, config.max_skew_s)
        if problem == "expired":
            return Refusal(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        if problem is not None:
            return Refusal(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        token = headers.get("x-acs-security-token")
        if token is not None:
            if headers.get("x-acs-accesskey-id", key_id) != key_id:
                return Refusal(
                    400,
                    "InvalidSecurityToken.MismatchWithAccessKey",
                    "Specified security token does not match the access key.",
                )
            if token in config.expired_security_tokens:
                return Refusal(
                    403, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired."
                )
        # Remember nonces for the accepted clock skew: older requests fail the date check anyway.
        horizon = now_wall - config.max_skew_s
        while self._nonce_order and self._nonce_order[0][0] < horizon:
            self._nonces.discard(self._nonce_order.popleft()[1])
        nonce_key = (key_id, headers.get("x-acs-signature-nonce", ""))
        if nonce_key in self._nonces:
            return Refusal(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces.add(nonce_key)
        self._nonce_order.append((now_wall, nonce_key))
        return None

    def _admit(self, key_id: str, action: str, now: float) -> bool:
        """Sliding-window flow control: at most qps_limit admitted in any (now-1 s, now]."""
        window = self._quota.setdefault((key_id, action), deque())
        cutoff = now - 1.0
        while window and window[0] <= cutoff:
            window.popleft()
        if len(window) >= self._config.qps_limit:
            return False
        window.append(now)
        return True
