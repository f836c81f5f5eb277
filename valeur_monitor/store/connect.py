"""Reaching Redis: the URL and TLS options, the client, error classes and the retry loop.

The URL is parsed here rather than by redis-py so that a password holding ``/ # ? @`` works
unencoded, an unknown query argument is one readable ``ConfigError`` and no message ever shows
the password (see docs/store.md, "Connecting").
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    MasterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from valeur_monitor import masking
from valeur_monitor.errors import (
    ConfigError,
    StoreError,
    StorePermanentError,
    StoreUnavailable,
)

T = TypeVar("T")

# Query arguments a URL may carry (documented in docs/store.md); anything else is refused.
QUERY_ARGS = {
    "db": "db", "password": "password", "username": "username",
    "ca": "tls_ca", "ssl_ca_certs": "tls_ca",
    "cert": "tls_cert", "ssl_certfile": "tls_cert",
    "key": "tls_key", "ssl_keyfile": "tls_key",
    "verify": "tls_verify", "ssl_cert_reqs": "tls_verify",
}
_HOST = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/?#@\[\]\s]+)(?::(?P<port>\d+))?"
                   r"(?:/(?P<db>\d*))?(?:\?(?P<query>.*))?\Z", re.DOTALL)


@dataclass(frozen=True)
class RedisOptions:
    """How to reach Redis besides the URL: credentials, TLS files, timeouts, retry budgets.

    Built from the settings (``VALEUR_REDIS_*``); values given in the URL win.
    """

    password: str | None = field(default=None, repr=False)
    username: str | None = None
    tls_ca: str | None = None           # PEM CA bundle for a private CA (rediss://)
    tls_cert: str | None = None         # client certificate (PEM), for servers requiring one
    tls_key: str | None = None          # its private key (PEM)
    tls_verify: bool = True             # verify the server certificate and host name
    connect_timeout: float = 2.0        # s, per connection attempt
    timeout: float = 30.0               # s, per command
    retry_for: float = 60.0             # s: a failing call is retried this long (restarts)
    startup_retry_for: float = 2.0      # s: the first ping gives up sooner (wrong URL)
    backoff: float = 0.05               # s, first pause; doubles up to max_backoff
    max_backoff: float = 2.0


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL plus options: where, who, how (password kept out of repr)."""

    scheme: str
    host: str = "127.0.0.1"
    port: int = 6379
    path: str = ""                      # unix socket path
    db: int = 0
    options: RedisOptions = field(default_factory=RedisOptions)

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    def display(self) -> str:
        """The URL as shown in messages: no password, no query string."""
        user = self.options.username or ""
        cred = f"{user}:***@" if self.options.password else (f"{user}@" if user else "")
        if self.scheme == "unix":
            return f"unix://{cred}{self.path}?db={self.db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{cred}{host}:{self.port}/{self.db}"

    def client(self) -> redis.Redis:
        """A redis-py client (bytes replies; redis-py's own retries off: the store retries)."""
        o = self.options
        common: dict[str, Any] = dict(
            db=self.db, username=o.username, password=o.password,
            socket_connect_timeout=o.connect_timeout, socket_timeout=o.timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=False,
            client_name="valeur-monitor")
        if self.scheme == "unix":
            return redis.Redis(unix_socket_path=self.path, **common)
        if self.tls:
            common.update(ssl=True, ssl_ca_certs=o.tls_ca, ssl_certfile=o.tls_cert,
                          ssl_keyfile=o.tls_key,
                          ssl_cert_reqs="required" if o.tls_verify else "none",
                          ssl_check_hostname=o.tls_verify)
        return redis.Redis(host=self.host, port=self.port, **common)


def parse_url(url: str, options: RedisOptions | None = None) -> RedisTarget:
    """Parse ``redis://``, ``rediss://`` or ``unix://`` URLs; ConfigError with a masked URL.

    Credentials may be in the user part (``redis://user:password@host``, percent-encoded or
    not: the host is what follows the last ``@`` that leaves a valid ``host:port/db``) or in
    the query (``?password=...``).
    """
    options = options or RedisOptions()
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"Redis URL {masking.mask(url)!r} must start with redis://, "
                          "rediss:// or unix://")
    userinfo, hostpart = _split_userinfo(scheme, rest)
    values: dict[str, str] = {}
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        if colon:
            values["password"] = unquote(password)
            if user:
                values["username"] = unquote(user)
        elif user:
            values["username"] = unquote(user)       # redis://user@host: the password comes
                                                      # from VALEUR_REDIS_PASSWORD
    if "password" in values:
        masking.register(values["password"])
    if scheme == "unix":
        path, _, query = hostpart.partition("?")
        target = RedisTarget("unix", path=unquote(path))
        if not target.path:
            raise ConfigError("Redis URL unix://... needs a socket path")
    else:
        m = _HOST.match(hostpart)
        if m is None or not m.group("host"):
            raise ConfigError(f"Redis URL {masking.mask(url)!r}: expected host[:port][/db]")
        query = m.group("query") or ""
        target = RedisTarget(scheme, host=m.group("host").strip("[]"),
                             port=int(m.group("port") or 6379), db=int(m.group("db") or 0))
    values.update(_query(query, url))
    return _apply(target, options, values)


def _split_userinfo(scheme: str, rest: str) -> tuple[str | None, str]:
    if "@" not in rest:
        return None, rest
    before_query = rest.split("?", 1)[0]
    if "@" not in before_query and re.search(r"(?:^|[?&])password=", rest):
        return None, rest          # redis://host:6379/0?password=p@ss: the '@' is the query's
    if scheme == "unix":
        at = rest.rfind("@/")
        return (rest[:at], rest[at + 1:]) if at >= 0 else (None, rest)
    at = len(rest)
    while (at := rest.rfind("@", 0, at)) >= 0:
        if _HOST.match(rest, at + 1):
            return rest[:at], rest[at + 1:]
    return None, rest


def _query(query: str, url: str) -> dict[str, str]:
    if not query:
        return {}
    pairs = parse_qsl(query, keep_blank_values=True)
    for name, value in pairs:
        if name.lower() in ("password", "pass"):
            masking.register(value)
    out: dict[str, str] = {}
    for name, value in pairs:
        key = QUERY_ARGS.get(name.lower())
        if key is None:
            known = ", ".join(sorted(QUERY_ARGS))
            raise ConfigError(f"Redis URL {masking.mask(url)!r}: unknown query argument "
                              f"{name!r} (accepted: {known}; TLS files may also come from "
                              "VALEUR_REDIS_TLS_CA, VALEUR_REDIS_TLS_CERT, VALEUR_REDIS_TLS_KEY)")
        out[key] = value
    return out


def _apply(target: RedisTarget, options: RedisOptions, values: dict[str, str]) -> RedisTarget:
    changes: dict[str, Any] = {}
    for key in ("password", "username", "tls_ca", "tls_cert", "tls_key"):
        if values.get(key):
            changes[key] = values[key]
    if "tls_verify" in values:
        verify = values["tls_verify"].lower()
        if verify not in ("required", "none", "true", "false", "yes", "no", "1", "0"):
            raise ConfigError(f"Redis URL: verify={values['tls_verify']!r} must be "
                              "'required' or 'none'")
        changes["tls_verify"] = verify in ("required", "true", "yes", "1")
    options = replace(options, **changes)
    masking.register(options.password)
    db = target.db
    if "db" in values:
        if not values["db"].isdigit():
            raise ConfigError(f"Redis URL: db={values['db']!r} is not a number")
        db = int(values["db"])
    target = replace(target, db=db, options=options)
    if target.tls:
        for name in ("tls_ca", "tls_cert", "tls_key"):
            path = getattr(options, name)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"Redis {name.replace('_', ' ')} file {path} not found")
        if (options.tls_cert is None) != (options.tls_key is None):
            raise ConfigError("Redis TLS client authentication needs both a certificate and "
                              "its key (VALEUR_REDIS_TLS_CERT and VALEUR_REDIS_TLS_KEY)")
    elif any((options.tls_cert, options.tls_key)) and target.scheme == "redis":
        raise ConfigError("Redis TLS files are set but the URL is redis://: use rediss://")
    return target


# -- errors and retries -------------------------------------------------------------------------

# Server replies that mean "try again soon": loading a dataset, failover, cluster resharding.
_TRANSIENT_REPLIES = (BusyLoadingError, TryAgainError, MasterDownError, ReadOnlyError)


def reason(exc: BaseException) -> str:
    """A short cause: the OS message when there is one, else the server's reply."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.strerror:
            return str(cur.strerror)
        cur = cur.__cause__ or cur.__context__
    text = str(exc).strip().rstrip(".")
    # redis-py: "Error 111 connecting to 127.0.0.1:1. Connection refused."
    if text.startswith("Error ") and ". " in text:
        text = text.rsplit(". ", 1)[1]
    return text or type(exc).__name__


def classify(exc: RedisError, where: str, operation: str) -> StoreError:
    """The store error for a redis-py error: transient (StoreUnavailable) or permanent."""
    why = reason(exc)
    if isinstance(exc, (AuthenticationError, AuthorizationError)) or why.startswith(
            ("NOAUTH", "WRONGPASS", "invalid username-password")):
        if "NOAUTH" in why or "HELLO must be called" in why or "required" in why:
            text = (f"Redis at {where} requires authentication: set VALEUR_REDIS_PASSWORD "
                    "(and VALEUR_REDIS_USERNAME for an ACL user)")
        else:
            text = (f"Redis refused the credentials at {where} ({why}): check "
                    "VALEUR_REDIS_USERNAME / VALEUR_REDIS_PASSWORD")
        return StorePermanentError(text, operation=operation)
    if isinstance(exc, NoPermissionError) or why.startswith("NOPERM"):
        return StorePermanentError(
            f"Redis ACL at {where} denies a command the store needs ({why}): grant the user "
            "+@read +@write +@scripting +info +ping on the store's keys (docs/store.md)",
            operation=operation)
    if isinstance(exc, OutOfMemoryError) or why.startswith("OOM"):
        return StorePermanentError(
            f"Redis at {where} is out of memory (maxmemory reached, policy noeviction); "
            "nothing of this batch was written. Raise maxmemory or free memory, then run "
            "again: the same input resumes where it stopped", operation=operation)
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, *_TRANSIENT_REPLIES)):
        what = "timed out" if isinstance(exc, RedisTimeoutError) else "unreachable"
        if isinstance(exc, _TRANSIENT_REPLIES):
            what = "not ready"
        return StoreUnavailable(f"Redis {what} at {where}: {why}", operation=operation)
    if "user_script" in why or "Error running script" in why or "ERR Error" in why:
        return StorePermanentError(f"Redis rejected the store's Lua script at {where}: {why}",
                                   operation=operation)
    return StorePermanentError(f"Redis error at {where}: {why}", operation=operation)


def with_retries(call: Callable[[], T], *, where: str, operation: str, budget: float,
                 backoff: float, max_backoff: float,
                 on_error: Callable[[RedisError], bool] | None = None) -> T:
    """Call `call`; transient failures are retried with exponential backoff and jitter for up
    to `budget` seconds; permanent ones raise at once. `on_error` may repair and ask for an
    immediate retry (NOSCRIPT: load the scripts) by returning True."""
    deadline = time.monotonic() + budget
    delay = backoff
    repaired = False
    while True:
        try:
            return call()
        except RedisError as exc:
            if on_error is not None and not repaired and on_error(exc):
                repaired = True
                continue
            error = classify(exc, where, operation)
            if not isinstance(error, StoreUnavailable) or time.monotonic() >= deadline:
                raise error from None
            pause = min(delay * random.uniform(0.8, 1.2), max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, max_backoff)
            repaired = False
