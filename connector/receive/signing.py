"""Delivery authentication: Standard Webhooks signatures, or a static bearer token.

The verifier follows the Standard Webhooks spec (and is tested against the
``standardwebhooks`` package's signer) but, unlike that package, works on raw bytes and
turns every malformed header into an ``AuthError`` (401), never a ValueError (500); a malformed
``webhook-id`` that no signature covers (bearer, unsigned) is a ``HeaderError`` (400).

Header values lose only HTTP's optional whitespace around them (space and tab: RFC 9110 section 5.5 says
it is not part of the value, and servers strip it anyway); anything else (a newline, a NUL, non-ASCII)
is part of the value, and no valid id, timestamp or token has one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_SECONDS = re.compile(r"[0-9]{1,12}")
# The fingerprints.webhook_id and deliveries.webhook_id columns are String(256); printable ASCII only.
WEBHOOK_ID_MAX = 256
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_OWS = " \t"

# The authentication schemes a delivery can pass (manifest.json lists them).
SCHEMES = ("standard-webhooks", "bearer", "unsigned")
# Every header Verifier.verify reads (lower case).
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "authorization")


class AuthError(Exception):
    """The delivery is not authenticated; the message says why (never the secret)."""


class HeaderError(Exception):
    """An authenticated delivery carries a malformed header (a 400 naming it)."""

    def __init__(self, header: str, problem: str) -> None:
        super().__init__(f"{header} header {problem}")
        self.header = header
        self.problem = problem


def _webhook_id_problem(msg_id: str) -> str | None:
    if len(msg_id) > WEBHOOK_ID_MAX:
        return f"must be at most {WEBHOOK_ID_MAX} characters"
    return None if _PRINTABLE_ASCII.fullmatch(msg_id) else "must be printable ASCII"


@dataclass(frozen=True)
class Verified:
    webhook_id: str | None  # the sender's message id when signed, for replay detection
    scheme: str  # "standard-webhooks", "bearer" or "unsigned"


def decode_secret(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for body (one v1 entry)."""
    digest = hmac.new(decode_secret(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def signed_headers(secret: str, webhook_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """All three Standard Webhooks headers, for senders (the demo, tests, the README)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": webhook_id, "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, webhook_id, ts, body)}


class Verifier:
    """Checks one delivery against every configured secret and token."""

    def __init__(self, secrets: Sequence[str], token: str | None, allow_unsigned: bool,
                 tolerance_seconds: float = 300) -> None:
        self._keys = [decode_secret(s) for s in secrets]
        self._token = token.encode() if token else None
        self._allow_unsigned = allow_unsigned
        self._tolerance = tolerance_seconds

    def verify(self, headers: Mapping[str, str], body: bytes) -> Verified:
        if "webhook-signature" in headers and self._keys:
            return Verified(self._verify_signature(headers, body), "standard-webhooks")
        if self._token and headers.get("authorization", "").lower().startswith("bearer "):
            presented = headers["authorization"][7:].strip(_OWS).encode()
            if hmac.compare_digest(presented, self._token):
                return Verified(self._optional_webhook_id(headers), "bearer")
            raise AuthError("bearer token does not match")
        if self._allow_unsigned:
            self._optional_webhook_id(headers)  # not kept (nothing vouches for it), but no malformed header passes
            return Verified(None, "unsigned")
        if self._keys and self._token:
            raise AuthError("missing webhook-signature header or Authorization: Bearer token")
        if self._keys:
            raise AuthError("missing webhook-signature header")
        raise AuthError("missing Authorization: Bearer token")

    @staticmethod
    def _optional_webhook_id(headers: Mapping[str, str]) -> str | None:
        """The sender's webhook-id without a signature: None when absent or blank; HeaderError when malformed."""
        msg_id = headers.get("webhook-id", "").strip(_OWS)
        if msg_id and (problem := _webhook_id_problem(msg_id)):
            raise HeaderError("webhook-id", problem)
        return msg_id or None

    def _verify_signature(self, headers: Mapping[str, str], body: bytes) -> str:
        msg_id = headers.get("webhook-id", "").strip(_OWS)
        raw_ts = headers.get("webhook-timestamp", "").strip(_OWS)
        if not msg_id or not raw_ts:
            raise AuthError("webhook-id and webhook-timestamp headers are required with webhook-signature")
        if problem := _webhook_id_problem(msg_id):  # part of what is signed: a 401, not a 400
            raise AuthError(f"webhook-id header is malformed: it {problem}")
        if not _SECONDS.fullmatch(raw_ts):  # ASCII digits only: str.isdigit() also takes "²", which int() refuses
            raise AuthError("webhook-timestamp must be integer seconds since the epoch")
        timestamp = int(raw_ts)
        skew = time.time() - timestamp
        if skew > self._tolerance:
            raise AuthError("webhook-timestamp is too old (outside the tolerance window)")
        if skew < -self._tolerance:
            raise AuthError("webhook-timestamp is too far in the future (outside the tolerance window)")
        presented = self._presented_signatures(headers["webhook-signature"])
        signed = f"{msg_id}.{timestamp}.".encode() + body
        for key in self._keys:
            expected = hmac.digest(key, signed, "sha256")
            if any(hmac.compare_digest(expected, sig) for sig in presented):
                return msg_id
        raise AuthError("no webhook-signature entry matches the body with any configured secret")

    @staticmethod
    def _presented_signatures(header: str) -> list[bytes]:
        found: list[bytes] = []
        for entry in header.split():
            version, sep, value = entry.partition(",")
            if not sep or version != "v1":
                continue
            try:
                found.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
        if not found:
            raise AuthError("webhook-signature has no well-formed v1 entry")
        return found
