"""Webhook authentication per vendor, over the raw body; pure (the clock is passed in).

* Zendesk: base64 HMAC-SHA256 of (timestamp + body) in `X-Zendesk-Webhook-Signature`, the
  timestamp in `X-Zendesk-Webhook-Signature-Timestamp` (refused when older than `max_skew`);
* Zammad (and GitHub-style senders): `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the body>`;
* a shared secret in a header, or HTTP basic auth (Freshdesk has no signature).
Comparisons are constant-time; no secret or signature ever appears in an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from valeur_monitor.engine.durations import parse_duration
from valeur_monitor.engine.event import parse_time
from valeur_monitor.errors import IngestError
from valeur_monitor.sources.spec import AuthSpec

ZENDESK_SIGNATURE = "x-zendesk-webhook-signature"
ZENDESK_TIMESTAMP = "x-zendesk-webhook-signature-timestamp"
HUB_SIGNATURE = "x-hub-signature"


def _refuse(detail: str) -> IngestError:
    return IngestError(401, "Unauthorized", detail)


def verify(auth: AuthSpec, secret: str | None, headers: Mapping[str, str], body: bytes,
           now_ms: int) -> None:
    """Raise IngestError(401) unless the request carries valid credentials for `auth`."""
    if auth.kind == "none":
        return
    if not secret:
        raise IngestError(503, "Service Unavailable", "this source has no credentials configured")
    if auth.kind == "zendesk_signature":
        _zendesk(auth, secret, headers, body, now_ms)
    elif auth.kind == "hub_signature":
        given = headers.get(HUB_SIGNATURE, "")
        algo, _, digest = given.partition("=")
        expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        if algo != "sha1" or not hmac.compare_digest(digest.lower(), expected):
            raise _refuse("missing or wrong X-Hub-Signature")
    elif auth.kind == "shared_secret":
        assert auth.header is not None       # the loader requires it
        if not hmac.compare_digest(headers.get(auth.header.lower(), "").encode(),
                                   secret.encode()):
            raise _refuse(f"missing or wrong {auth.header} header")
    elif auth.kind == "basic":
        scheme, _, token = headers.get("authorization", "").partition(" ")
        try:
            pair = base64.b64decode(token, validate=True) if scheme.lower() == "basic" else b""
        except (binascii.Error, ValueError):
            pair = b""
        if not hmac.compare_digest(pair, secret.encode()):
            raise _refuse("missing or wrong basic credentials")


def _zendesk(auth: AuthSpec, secret: str, headers: Mapping[str, str], body: bytes,
             now_ms: int) -> None:
    signature = headers.get(ZENDESK_SIGNATURE, "")
    stamp = headers.get(ZENDESK_TIMESTAMP, "")
    if not signature or not stamp:
        raise _refuse("missing X-Zendesk-Webhook-Signature or -Timestamp")
    expected = base64.b64encode(
        hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise _refuse("wrong X-Zendesk-Webhook-Signature")
    try:
        age = abs(now_ms - parse_time(stamp))
    except ValueError:
        raise _refuse("X-Zendesk-Webhook-Signature-Timestamp is not an RFC 3339 time") from None
    if age > parse_duration(auth.max_skew):
        raise _refuse("signature timestamp too far from now (replayed or clock skew)")


def zendesk_headers(secret: str, body: bytes, stamp: str) -> dict[str, str]:
    """The headers Zendesk would send (tests, benchmarks and the docs' curl example)."""
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {"X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp}


def hub_signature(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
