"""Secrets masking: every known secret (and URL credentials) becomes ``***`` in any text.

Secrets are *registered* where they are read (Redis URL or password, Kafka SASL password);
``mask`` then replaces them, in clear and in their percent-encoded forms, whatever characters
they contain. Two patterns catch what was never registered: the password of a
``scheme://user:password@host`` URL and a ``password=`` query argument. Once a secret is
registered, every log record is masked when created (a log-record factory), so a library that
logs a URL or an exception cannot print it either.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 3      # shorter "secrets" would mask ordinary text; they are still never printed
                    # by this project's own messages (those show URLs through `redact`).

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_installed = False

# scheme://user:password@host — the password may contain anything but whitespace; the host
# part after the LAST '@' of the token is kept.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?P<pw>\S+)(?=@[^\s@]+)",
                           re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&;](?:password|pass|pwd)=)(?P<pw>[^&\s]+)",
                             re.IGNORECASE)


def register(secret: str | None) -> None:
    """Remember `secret` (and its encoded forms) so that `mask` hides it everywhere."""
    if not secret or len(secret) < MIN_LENGTH:
        return
    global _pattern
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(f for f in forms if len(f) >= MIN_LENGTH)
        # Longest first, so that a secret containing another is replaced whole.
        alternatives = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in alternatives))
    _install_log_masking()


def mask(text: str) -> str:
    """`text` with every registered secret and every URL/query password replaced by ``***``."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    if "=" in text:
        text = _QUERY_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return text


def clear() -> None:
    """Forget every registered secret (tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def _install_log_masking() -> None:
    """Mask every log record at creation: message, arguments and formatted traceback."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:   # a broken format string: keep the record as the caller made it
            return record
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
