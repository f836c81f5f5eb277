"""The one exception tree of valeur-monitor."""

from __future__ import annotations

from dataclasses import dataclass


class ValeurError(Exception):
    """Base of every error raised on purpose by valeur-monitor."""


class ConfigError(ValeurError):
    """Settings or command-line options that cannot work."""


@dataclass(frozen=True)
class RuleIssue:
    """One problem found in a rule file, with its location."""

    file: str
    line: int
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        rule = f" [{self.rule_id}]" if self.rule_id else ""
        return f"{where}:{rule} {self.message}"


class RuleLoadError(ValeurError):
    """A rule set was refused; carries every issue found, not only the first."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class EventError(ValeurError):
    """An input record is not a valid event; `reason` is a stable short code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class TransientError(ValeurError):
    """Marker: the same operation may succeed later (retry with backoff); others are permanent."""


class StoreError(ValeurError):
    """The state store failed; `operation` says which store call (load, commit, due, ...).

    Messages are masked (``masking.mask``) when built, so no registered secret can reach a log,
    a metric, a health page or the terminal through one.
    """

    def __init__(self, message: str, *, operation: str = "other") -> None:
        from valeur_monitor.masking import mask

        super().__init__(mask(message))
        self.operation = operation


class StoreUnavailable(StoreError, TransientError):
    """Redis unreachable, timing out, loading or failing over, beyond the store's own retries."""


class StorePermanentError(StoreError):
    """Retrying cannot help: authentication, ACL, script error, OOM with noeviction, config."""


class StoreValueUndecodable(StorePermanentError, ValueError):
    """A stored customer value this release cannot decode: written by a newer release (a state
    version or head codec it does not know) or corrupted. A ValueError too: it is bad data."""


class StoreDataLost(StorePermanentError):
    """Redis lost (or rolled back) data this process wrote: restart without persistence, flush,
    failover to an empty replica. Writing on would mix old and new states."""


class StoreWriterConflict(StorePermanentError):
    """Another writer committed to a store that this process was told it writes alone (`run
    --store redis://` keeps its customers' states in memory): its commits may have replaced
    the other writer's changes to customers both touched."""


class BrokerError(ValeurError):
    """Kafka could not be reached or refused an operation."""


class BatchWithheld(ValeurError):
    """A worker's batch was not published because the batch before it failed: the worker stops
    and both batches are consumed again after its restart (at-least-once outputs)."""


class ApiError(ValeurError):
    """An HTTP API request that cannot be answered; `status` and `title` become a problem."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        self.status = status
        self.title = title
        self.detail = detail
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")


class WebhookError(ValeurError):
    """A webhook endpoint or the outbox is misconfigured or failed."""


class SourceLoadError(ValeurError):
    """Source mapping files were refused; carries every issue (file:line, mapping name)."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class CatalogueError(ValeurError):
    """An event catalogue was refused; carries every issue found, with `file:line`."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class IdentityError(ValeurError):
    """An identity mapping file was refused; every problem as `file:line: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class IngestError(ApiError):
    """A helpdesk webhook cannot be accepted; `status` and `title` become a problem body."""
