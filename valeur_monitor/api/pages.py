"""The HTML pages: customer search, a customer's timeline, the at-risk list (Jinja2, SVG)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from valeur_monitor.api import resources as R
from valeur_monitor.api import svg
from valeur_monitor.api.auth import COOKIE, Auth
from valeur_monitor.engine.event import format_time
from valeur_monitor.errors import ApiError

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
templates.env.filters["when"] = lambda ms: format_time(ms).replace("T", " ").rstrip("Z")
pages = APIRouter(prefix="/ui", include_in_schema=False)
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _render(request: Request, name: str, status: int = 200, **data: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, data, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _guard(request: Request) -> Response | None:
    """None when the caller may read; else the login redirect (401) or a refusal page (403)."""
    auth: Auth = request.app.state.auth
    token = request.cookies.get(COOKIE)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:]
    try:
        request.state.caller = auth.check(token, "read")
    except ApiError as exc:
        if exc.status == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
        return _render(request, "message.html", exc.status, title=exc.title, text=exc.detail)
    return None


def _context(request: Request) -> R.Context:
    context: R.Context = request.app.state.context
    return context


@pages.get("/", response_model=None)
def home() -> RedirectResponse:
    return RedirectResponse("/ui/at-risk", status_code=303)


root = APIRouter(include_in_schema=False)


@root.get("/", response_model=None)
def index() -> RedirectResponse:
    return RedirectResponse("/ui/at-risk", status_code=303)


@pages.get("/search", response_model=None)
def search(request: Request, q: Annotated[str, Query(max_length=256)] = "") -> Response:
    if (refused := _guard(request)) is not None:
        return refused
    q = q.strip()
    if q and _context(request).reader.score(q) is not None:
        return RedirectResponse(f"/ui/customers/{quote(q, safe='')}", status_code=303)
    return _render(request, "message.html", 404 if q else 200, title="Search",
                   text=f"No customer {q!r}." if q else "Type a customer id.", query=q)


@pages.get("/customers/{customer}", response_model=None)
def timeline(request: Request, customer: str,
             as_of: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    if (refused := _guard(request)) is not None:
        return refused
    ctx = _context(request)
    try:
        story = R.story(ctx, customer, as_of)
    except ApiError as exc:
        return _render(request, "message.html", exc.status, title=exc.title, text=exc.detail,
                       query=customer)
    return _render(request, "timeline.html", story=story, v=story.view,
                   score_svg=svg.score_chart(story.points),
                   promise_svg=svg.promise_chart(story.bars),
                   dims_svg=svg.dimension_chart(story.view.dims), query=customer)


@pages.get("/at-risk", response_model=None)
def at_risk(request: Request, team: Annotated[str | None, Query(max_length=128)] = None,
            channel: Annotated[str | None, Query(max_length=128)] = None,
            limit: Annotated[int, Query(ge=1, le=500)] = 50,
            as_of: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    if (refused := _guard(request)) is not None:
        return refused
    ctx = _context(request)
    try:
        ranked = R.at_risk_list(ctx, limit=limit, as_of=as_of, team=team or None,
                                channel=channel or None)
        losing = R.losing_list(ctx, limit=limit, window="7d", as_of=as_of, team=team or None,
                               channel=channel or None)
    except ApiError as exc:
        return _render(request, "message.html", exc.status, title=exc.title, text=exc.detail)
    return _render(request, "at_risk.html", ranked=ranked, losing=losing, team=team or "",
                   channel=channel or "", limit=limit)


@pages.get("/login", response_model=None)
def login_form(request: Request, next: str = "/ui/at-risk") -> Response:
    return _render(request, "login.html", next=_local(next), error="")


@pages.post("/login", response_model=None)
async def login(request: Request) -> Response:
    form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _local((form.get("next") or ["/ui/at-risk"])[0])
    auth: Auth = request.app.state.auth
    try:
        auth.check(token, "read")
    except ApiError:
        return _render(request, "login.html", 401, next=target, error="Unknown token.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


def _local(target: str) -> str:
    """Only redirect inside the pages (no open redirect)."""
    return target if target.startswith("/ui/") and "//" not in target else "/ui/at-risk"
