"""Deployment settings: one pydantic-settings object for workers and the Kafka tooling.

Sources, highest priority first: keyword arguments (CLI options), environment variables
(prefix ``VALEUR_``, nested fields joined by ``__``), the optional config file given with
``--config`` (TOML, YAML or a ``.env`` file), then the defaults below::

    VALEUR_KAFKA__BOOTSTRAP_SERVERS=broker-1:9092,broker-2:9092
    VALEUR_KAFKA__SECURITY_PROTOCOL=SASL_SSL
    VALEUR_REDIS_URL=redis://redis:6379/0
    VALEUR_REDIS_PASSWORD=...                 # kept out of URLs, `ps` and every message
    VALEUR_REDIS_TLS_CA=/etc/valeur/redis-ca.pem
    VALEUR_RULES=rules:extra-rules            # os.pathsep-separated, like the embedded runner
    VALEUR_CATALOGUE=streams/our-events.yaml  # the deployment's own event types (os.pathsep)
    VALEUR_INPUT__MAX_RECORD_BYTES=1048576    # larger records are dead-lettered `too_large`
    VALEUR_TOPICS__EVENTS=support.events
    VALEUR_WORKER__CLOCK=event

The same keys in a TOML file: ``redis_url = "..."``, ``[kafka] bootstrap_servers = "..."``,
``[topics] events = "..."``, ``[worker] batch_size = 2000``.

Rule semantics (lateness, late horizon, ledger cap) stay in the rule files, not here.
"""

from __future__ import annotations

import os
import tempfile
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from valeur_monitor import masking
from valeur_monitor.errors import ConfigError
from valeur_monitor.metrics import DEFAULT_BAND_EDGES
from valeur_monitor.shipped import shipped

if TYPE_CHECKING:
    import redis

    from valeur_monitor.store.connect import RedisOptions

ClockMode = Literal["wall", "event"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Scope = Literal["read", "admin"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
TOPIC_ROLES = ("events", "score-updates", "customer-alerts", "dead-letters", "ledger")

_config_file: ContextVar[Path | None] = ContextVar("valeur_config_file", default=None)


class KafkaSettings(BaseModel):
    """How every Kafka client (faust worker, admin, producer, readers) reaches the cluster."""

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = "127.0.0.1:9092"       # comma-separated host:port list
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None                  # CA bundle for SSL / SASL_SSL
    client_id: str = "valeur-monitor"
    request_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts:
            raise ValueError("at least one host:port is needed")
        for host in hosts:
            name, _, port = host.rpartition(":")
            if not name or not port.isdigit():
                raise ValueError(f"{host!r} is not host:port")
        return ",".join(hosts)

    @property
    def servers(self) -> list[str]:
        return self.bootstrap_servers.split(",")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def check(self) -> None:
        """Refuse incomplete security settings with one readable message."""
        if self.uses_sasl:
            missing = [n for n in ("sasl_mechanism", "sasl_username", "sasl_password")
                       if getattr(self, n) is None]
            if missing:
                raise ConfigError(f"kafka.security_protocol={self.security_protocol} needs "
                                  f"kafka.{', kafka.'.join(missing)}")
        if self.ssl_cafile is not None and not self.ssl_cafile.is_file():
            raise ConfigError(f"kafka.ssl_cafile {self.ssl_cafile} is not a file")

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (KafkaAdminClient, KafkaProducer, ...)."""
        self.check()
        config: dict[str, Any] = {"bootstrap_servers": self.servers,
                                  "client_id": self.client_id,
                                  "security_protocol": self.security_protocol,
                                  "request_timeout_ms": int(self.request_timeout_s * 1000)}
        if self.uses_sasl:
            assert self.sasl_password is not None  # check() above
            config.update(sasl_mechanism=self.sasl_mechanism,
                          sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self.sasl_password.get_secret_value())
        if self.ssl_cafile is not None:
            config["ssl_cafile"] = str(self.ssl_cafile)
        return config


class TopicNames(BaseModel):
    """Topic names; None takes the name given in the topology file (streams/topics.yaml)."""

    model_config = ConfigDict(extra="forbid")

    events: str | None = None
    score_updates: str | None = None
    customer_alerts: str | None = None
    dead_letters: str | None = None
    ledger: str | None = None

    def overrides(self) -> dict[str, str]:
        """Role (as in topics.yaml, e.g. ``score-updates``) -> name, for the names set here."""
        return {field.replace("_", "-"): name for field, name in self.model_dump().items()
                if name}


class WorkerSettings(BaseModel):
    """The faust worker: consumer group, batching, stream-time clock, web server."""

    model_config = ConfigDict(extra="forbid")

    app_id: str = "valeur-monitor"                  # faust app id = Kafka consumer group
    batch_size: int = Field(default=5000, ge=1, le=100_000)  # a cap: small when not behind
    flush_interval: float = Field(default=0.05, gt=0)   # s: a partial batch waits at most this
    fetch_on_loop: bool = True      # fetch on the worker's loop, not faust's consumer thread
    clock: ClockMode = "wall"                       # wall: idle stream time follows the clock
    tick_interval: float = Field(default=1.0, gt=0)     # s between stream-time timer ticks
    idle_after: float = Field(default=2.0, gt=0)        # s without records: wall clock leads
    web_host: str = "127.0.0.1"                     # loopback by default: no authentication
    web_port: int = Field(default=6066, ge=1, le=65535)
    datadir: Path = Path(tempfile.gettempdir()) / "valeur-monitor"
    session_timeout: float = Field(default=10.0, ge=3)  # broker_session_timeout, s
    loglevel: str = "info"


class ApiToken(BaseModel):
    """One bearer token of the HTTP API: only its SHA-256 is configured, never the token."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)          # shown in logs instead of the token
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["read"]))


class ApiSettings(BaseModel):
    """`serve` and `run --serve`: where the API listens, who may call it, how much it answers."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"             # loopback unless configured
    port: int = Field(default=8080, ge=1, le=65535)
    tokens: list[ApiToken] = Field(default_factory=list)  # none: open, and loopback only
    max_page: int = Field(default=500, ge=1, le=10_000)
    max_window: str = "90d"
    losing_pool: int = Field(default=5000, ge=1, le=1_000_000)
    band_edges: tuple[float, float, float] = DEFAULT_BAND_EDGES
    redis_prefix: str = "vm:"


class IngestSettings(BaseModel):
    """The webhook ingest server and `import`: mappings, secrets, identities, output."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"                         # loopback unless deliberately exposed
    port: int = Field(default=8088, ge=1, le=65535)
    sources: Annotated[list[str], NoDecode] = Field(default_factory=list)  # default streams/sources
    body_limit: int = Field(default=1_048_576, ge=1024)   # bytes per request
    output: str = "kafka"                           # "kafka", or a JSONL file appended with fsync
    dead_letters: Path | None = None                # file output: default <output>.dead.jsonl
    secrets: dict[str, SecretStr] = Field(default_factory=dict)      # source -> signing secret
    basic_users: dict[str, SecretStr] = Field(default_factory=dict)  # source -> "user:password"
    identities: str | None = None                   # a CSV mapping file, or "redis"
    identity_key: SecretStr | None = None           # HMAC key of derived customer ids
    region: str | None = None                       # country of national numbers in `identities`
    ack_timeout_s: float = Field(default=10.0, gt=0)    # Kafka acknowledgement wait, then 503

    @field_validator("sources", mode="before")
    @classmethod
    def _split_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p for p in value.split(os.pathsep) if p]
        return value


WebhookEvent = Literal["customer.alert", "customer.warning", "customer.score_changed"]


class WebhookEndpoint(BaseModel):
    """One receiver of signed webhooks (Standard Webhooks: webhook-id/-timestamp/-signature)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")   # consumer group, metric label
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr                                # whsec_<base64>, shared with the receiver
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list[WebhookEvent](["customer.alert", "customer.score_changed"]))
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class WebhookSettings(BaseModel):
    """Outbox and delivery: retries with exponential backoff, then a dead letter."""

    model_config = ConfigDict(extra="forbid")

    endpoints: list[WebhookEndpoint] = Field(default_factory=list)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_s: float = Field(default=1.0, gt=0)        # first retry delay, doubled each time
    max_backoff_s: float = Field(default=600.0, gt=0)
    score_delta: float = Field(default=5.0, ge=0)      # smaller score changes are not sent
    debounce_s: float = Field(default=60.0, ge=0)      # changes within this long are sent as one
    outbox_maxlen: int = Field(default=1_000_000, ge=1000)
    lease_s: float = Field(default=30.0, ge=0.2)       # one sender per endpoint holds a lease

    @model_validator(mode="after")
    def _lease_outlives_a_delivery(self) -> WebhookSettings:
        longest = max((e.timeout_s for e in self.endpoints), default=0.0)
        if self.lease_s <= longest:
            raise ValueError(f"lease_s ({self.lease_s:g}) must exceed the longest endpoint "
                             f"timeout_s ({longest:g}), or a second sender could overtake one "
                             "still waiting for an answer")
        return self
    redis_prefix: str = "vm:"


class InputSettings(BaseModel):
    """Bounds on every input record (file, stdin or Kafka); beyond them, a dead letter."""

    model_config = ConfigDict(extra="forbid")

    max_record_bytes: int = Field(default=1 << 20, ge=256)   # larger records: `too_large`
    max_depth: int = Field(default=32, ge=2, le=500)          # deeper JSON: `too_deep`
    future_limit: str = "7d"   # event time this far beyond max(stream time, wall clock): refused

    @field_validator("future_limit")
    @classmethod
    def _duration(cls, value: str) -> str:
        from valeur_monitor.engine.durations import parse_duration

        if parse_duration(value) <= 0:
            raise ValueError("must be a positive duration such as 1d or 6h")
        return value

    def future_ms(self) -> int:
        from valeur_monitor.engine.durations import parse_duration

        return parse_duration(self.future_limit)

    def apply(self) -> None:
        """Make these the limits of the codec and of processors created from now on."""
        from valeur_monitor.codec import InputLimits, configure_limits

        configure_limits(InputLimits(self.max_record_bytes, self.max_depth, self.future_ms()))


class Settings(BaseSettings):
    """Everything a deployment configures (see the module docstring for the sources)."""

    model_config = SettingsConfigDict(env_prefix="VALEUR_", env_nested_delimiter="__",
                                      extra="ignore", validate_default=True)

    kafka: KafkaSettings = KafkaSettings()
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis credentials, TLS and retries (docs/store.md); values in the URL win over these.
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_tls_ca: Path | None = None                # CA bundle of a private CA (rediss://)
    redis_tls_cert: Path | None = None              # client certificate, when Redis asks one
    redis_tls_key: Path | None = None               # its private key
    redis_tls_verify: bool = True                   # verify the server certificate and name
    redis_retry_s: float = Field(default=60.0, ge=0)    # retry a failing call this long
    redis_timeout_s: float = Field(default=30.0, gt=0)  # per command
    rules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rules_label: str | None = None                  # `+label` of the rule-set version
    catalogue: Annotated[list[str], NoDecode] = Field(default_factory=list)  # own event types
    input: InputSettings = InputSettings()
    topology: Path | None = None                    # default: streams/topics.yaml
    topics: TopicNames = TopicNames()
    worker: WorkerSettings = WorkerSettings()
    api: ApiSettings = ApiSettings()
    webhooks: WebhookSettings = WebhookSettings()
    ingest: IngestSettings = IngestSettings()

    @field_validator("rules", "catalogue", mode="before")
    @classmethod
    def _split_rules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p for p in value.split(os.pathsep) if p]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if value not in ("memory", "memory://") and not value.startswith(
                ("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL (or 'memory')")
        return value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_file.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(_file_source(settings_cls, path))
        return tuple(sources)

    # -- derived ------------------------------------------------------------------------------
    def redis_options(self) -> RedisOptions:
        """How the Redis store connects (credentials, TLS files, timeouts, retry budget)."""
        from valeur_monitor.store.connect import RedisOptions

        def path(p: Path | None) -> str | None:
            return str(p) if p is not None else None

        return RedisOptions(
            password=(self.redis_password.get_secret_value()
                      if self.redis_password is not None else None),
            username=self.redis_username, tls_ca=path(self.redis_tls_ca),
            tls_cert=path(self.redis_tls_cert), tls_key=path(self.redis_tls_key),
            tls_verify=self.redis_tls_verify, timeout=self.redis_timeout_s,
            retry_for=self.redis_retry_s)

    def redis_client(self) -> redis.Redis:
        """A client of ``redis_url`` with these credentials and TLS files (same URL rules and
        masking as the store); for tools that use Redis directly (identities)."""
        from valeur_monitor.store.connect import parse_url

        return parse_url(self.redis_url, self.redis_options()).client()

    def store_url(self, given: str | None = None) -> str:
        """The store of the embedded commands: `given` (--store), else a configured
        ``redis_url`` (VALEUR_REDIS_URL or the config file), else ``memory``."""
        if given:
            return given
        return self.redis_url if "redis_url" in self.model_fields_set else "memory"

    def rule_paths(self) -> list[str]:
        """The rule files/dirs: as configured, else the embedded runner's default lookup."""
        if self.rules:
            return list(self.rules)
        if Path("rules").is_dir():
            return ["rules"]
        return [str(shipped("rules"))]

    def topology_path(self) -> Path:
        if self.topology is not None:
            return self.topology
        local = Path("streams") / "topics.yaml"
        return local if local.is_file() else shipped("streams", "topics.yaml")


def _file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    if suffix in (".yaml", ".yml"):
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    return DotEnvSettingsSource(settings_cls, env_file=path, env_prefix="VALEUR_",
                                env_nested_delimiter="__")


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from overrides > environment > `config` file > defaults; ConfigError if invalid.

    `config` may be TOML (``.toml``), YAML (``.yaml``/``.yml``) or a dotenv file (anything else,
    with the same ``VALEUR_`` names as the environment).
    """
    path = Path(config) if config is not None else None
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} not found")
    token = _config_file.set(path)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                             for e in exc.errors())
        where = f" (config file {path})" if path is not None else ""
        raise ConfigError(f"invalid settings{where}: {problems}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    finally:
        _config_file.reset(token)
    for secret in (settings.redis_password, settings.kafka.sasl_password):
        if secret is not None:
            masking.register(secret.get_secret_value())
    settings.kafka.check()
    return settings
