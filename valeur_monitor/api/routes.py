"""The /v1 routes and the health probes: parameters in, `resources` out, nothing else."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from valeur_monitor.api import resources as R
from valeur_monitor.api import schemas as S
from valeur_monitor.api.auth import require
from valeur_monitor.api.problems import responses
from valeur_monitor.engine.ledger import OUTCOMES

CustomerId = Annotated[str, Path(min_length=1, max_length=256, description="customer id")]
AsOf = Annotated[str | None, Query(max_length=64, description=(
    "RFC 3339 instant to decay scores to (default: now)"))]
Team = Annotated[str | None, Query(max_length=128)]
Channel = Annotated[str | None, Query(max_length=128)]
Limit = Annotated[int, Query(ge=1, le=500)]
Outcome = Annotated[list[str], Query(description=f"one of {', '.join(OUTCOMES)}",
                                     max_length=len(OUTCOMES))]

api = APIRouter(prefix="/v1", responses=responses(400, 401, 403, 503))
read = [Depends(require("read"))]
admin = [Depends(require("admin"))]


def ctx(request: Request) -> R.Context:
    context: R.Context = request.app.state.context
    return context


Ctx = Annotated[R.Context, Depends(ctx)]


@api.get("/customers/{customer}", dependencies=read, responses=responses(404),
         summary="A customer's score at as_of, with breakdown, reasons and open promises")
def get_customer(c: Ctx, customer: CustomerId, as_of: AsOf = None) -> S.Customer:
    return R.customer(c, customer, as_of)


@api.get("/customers/{customer}/ledger", dependencies=read, responses=responses(404),
         summary="A customer's ledger entries, newest first, paginated by cursor")
def get_ledger(c: Ctx, customer: CustomerId,
               rule: Annotated[list[str], Query(max_length=50)] = [],  # noqa: B006
               outcome: Outcome = [],  # noqa: B006
               since: AsOf = None, until: AsOf = None,
               cursor: Annotated[str | None, Query(max_length=32)] = None,
               limit: Limit = 50) -> S.LedgerPage:
    return R.ledger(c, customer, rules=rule, outcomes=outcome, since=since, until=until,
                    cursor=cursor, limit=limit)


@api.get("/rankings/at-risk", dependencies=read,
         summary="Customers with the lowest negative scores at as_of (by team, channel)")
def get_at_risk(c: Ctx, limit: Limit = 50, as_of: AsOf = None, team: Team = None,
                channel: Channel = None) -> S.RankedList:
    return R.at_risk_list(c, limit=limit, as_of=as_of, team=team, channel=channel)


@api.get("/rankings/losing", dependencies=read,
         summary="Customers whose ledger lost the most value within a window")
def get_losing(c: Ctx, limit: Limit = 50,
               window: Annotated[str, Query(max_length=16, description="e.g. 7d, 24h")] = "7d",
               as_of: AsOf = None, team: Team = None, channel: Channel = None) -> S.RankedList:
    return R.losing_list(c, limit=limit, window=window, as_of=as_of, team=team, channel=channel)


@api.get("/accounts/{account}", dependencies=read, responses=responses(404),
         summary="An account's score at as_of (sum over its customers) and its customers")
def get_account(c: Ctx, account: Annotated[str, Path(min_length=1, max_length=256)],
                as_of: AsOf = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
                ) -> S.Account:
    return R.account(c, account, as_of, limit)


@api.get("/rules", dependencies=admin, summary="The rules and alerts this server has loaded")
def get_rules(c: Ctx) -> S.Rules:
    return R.rules_info(c)


probes = APIRouter()


@probes.get("/healthz", summary="Liveness: the process answers")
def healthz() -> S.Health:
    return S.Health(status="ok")


@probes.get("/readyz", summary="Readiness: the score store answers",
            responses=responses(503))
def readyz(c: Ctx) -> S.Health:
    c.reader.ping()     # StoreError -> 503 problem (see problems.install)
    return S.Health(status="ready")
