"""The triage web app over the watch database: queue, release page, labels, dashboard.

Server-rendered with Starlette and Jinja2 (autoescape on for every template; package data is
never marked safe), no JavaScript. `create_app` builds the ASGI app around an open
`WatchStore`; `malseq serve` (malseq._cli_serve) runs it with uvicorn.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from malseq.sanitize import clean
from malseq.serve import charts
from malseq.serve.highlight import highlight_excerpt, stylesheet
from malseq.serve.security import (
    CSRF_FIELD,
    LOOPBACK_NAMES,
    REVIEWER_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    TOKEN_COOKIE,
    Guard,
)
from malseq.serve.view import parse_report
from malseq.watch.store import Label, QueueFilter, WatchStore, WatchStoreError

PAGE_SIZE = 50
DASHBOARD_HOURS = 48
MAX_REVIEWER = 80
MAX_NOTE = 2_000
MAX_FORM_BYTES = 32_768  # a label form: token, label, reviewer, note (its fields are capped below)
VERDICTS = ("malicious", "benign", "error", "pending")
LABEL_FILTERS = ("malicious", "benign", "unsure", "unlabelled")
ECOSYSTEMS = ("pypi", "npm")


class BadRequest(Exception):
    """A query or form value the app cannot use; shown as a 400 page naming it."""


@dataclass(frozen=True)
class QueueQuery:
    """The queue page's filters as the URL gives them (validated)."""

    ecosystem: str = ""
    verdict: str = ""
    label: str = ""
    since: str = ""  # YYYY-MM-DD (UTC), first seen on or after
    until: str = ""  # YYYY-MM-DD (UTC), first seen before the end of that day
    page: int = 1

    def store_filter(self) -> QueueFilter:
        return QueueFilter(
            ecosystem=self.ecosystem or None,
            verdict=self.verdict or None,
            label=Label(self.label) if self.label and self.label != "unlabelled" else None,
            unlabelled=self.label == "unlabelled",
            since=_day_start(self.since) if self.since else None,
            until=_day_start(self.until) + 86_400 if self.until else None,
        )

    def url(self, **change: Any) -> str:
        values = {"ecosystem": self.ecosystem, "verdict": self.verdict, "label": self.label,
                  "since": self.since, "until": self.until, "page": self.page, **change}
        return "/?" + urlencode({k: v for k, v in values.items() if v and not (k == "page" and v == 1)})


def _day_start(text: str) -> float:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise BadRequest(f"a date must be written YYYY-MM-DD, not {clean(text, 40)!r}") from exc


def parse_queue_query(params: Any) -> QueueQuery:
    def choice(key: str, allowed: tuple[str, ...]) -> str:
        value = str(params.get(key) or "")
        if value and value not in allowed:
            raise BadRequest(f"{key} must be one of {', '.join(allowed)}")
        return value

    page_text = str(params.get("page") or "1")
    if not page_text.isdigit() or not 1 <= int(page_text) <= 1_000_000:
        raise BadRequest("page must be a positive number")
    query = QueueQuery(choice("ecosystem", ECOSYSTEMS), choice("verdict", VERDICTS), choice("label", LABEL_FILTERS),
                       str(params.get("since") or ""), str(params.get("until") or ""), int(page_text))
    query.store_filter()  # dates checked here
    return query


def _when(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _finalize(value: Any) -> Any:
    # Every `{{ }}` passes here before autoescape: package strings lose control and bidi
    # characters (shown as \x.. escapes) so a reviewer sees what the bytes are.
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return clean(value, keep_newlines=True)


def template_environment() -> Environment:
    env = Environment(loader=PackageLoader("malseq.serve", "templates"), autoescape=True,
                      undefined=StrictUndefined, finalize=_finalize, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["score"] = _score
    env.filters["highlight"] = highlight_excerpt
    return env


def create_app(store: WatchStore, *, token: str | None = None, loopback_only: bool = True,
               clock: Callable[[], float] = time.time) -> Starlette:
    """The ASGI app. `loopback_only`: accept only loopback Host headers (the server is bound to one)."""
    guard = Guard.create(token)
    env = template_environment()
    css = (_STATIC_CSS + "\n" + stylesheet()).encode()

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session = request.state.session
        html = env.get_template(name).render(csrf=guard.csrf_token(session), csrf_field=CSRF_FIELD,
                                             db=str(store.path), path=request.url.path, **context)
        return HTMLResponse(html, status_code=status)

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        return render(request, "error.html", status=status, status_code=status, message=message)

    def queue_page(request: Request) -> Response:
        try:
            query = parse_queue_query(request.query_params)
        except BadRequest as exc:
            return error_page(request, 400, str(exc))
        filters = query.store_filter()
        total = store.queue_count(filters)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        rows = store.queue(filters, limit=PAGE_SIZE, offset=(query.page - 1) * PAGE_SIZE)
        return render(request, "queue.html", rows=rows, query=query, total=total, pages=pages,
                      ecosystems=ECOSYSTEMS, verdicts=VERDICTS, label_filters=LABEL_FILTERS,
                      first=(query.page - 1) * PAGE_SIZE + 1)

    def release_page(request: Request) -> Response:
        release_id = int(request.path_params["release_id"])
        detail = store.release(release_id)
        if detail is None:
            return error_page(request, 404, f"no release {release_id} in this database")
        view = parse_report(detail.result.report_json) if detail.result is not None else None
        return render(request, "release.html", detail=detail, release=detail.release, result=detail.result,
                      view=view, labels=tuple(reversed(detail.labels)), label_choices=tuple(Label),
                      reviewer=request.cookies.get(REVIEWER_COOKIE, "")[:MAX_REVIEWER],
                      saved=request.query_params.get("saved") == "1")

    async def label_post(request: Request) -> Response:
        release_id = int(request.path_params["release_id"])
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_FORM_BYTES:
            return error_page(request, 413, f"a label form is at most {MAX_FORM_BYTES} bytes")
        async with request.form(max_files=0, max_fields=10, max_part_size=16_384) as form:
            fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        if not guard.csrf_ok(request.cookies.get(SESSION_COOKIE), fields.get(CSRF_FIELD)):
            return error_page(request, 403, "this form is out of date or was not sent from this app: "
                                            "reload the release page and label again")
        label_text, reviewer, note = fields.get("label", ""), fields.get("reviewer", "").strip(), fields.get("note", "")
        if label_text not in {str(x) for x in Label}:
            return error_page(request, 400, "label must be malicious, benign or unsure")
        if not reviewer or len(reviewer) > MAX_REVIEWER:
            return error_page(request, 400, f"give the reviewer's name (at most {MAX_REVIEWER} characters)")
        if len(note) > MAX_NOTE:
            return error_page(request, 400, f"the note is longer than {MAX_NOTE} characters")
        try:
            await run_in_threadpool(store.add_label, release_id, Label(label_text), reviewer, clock(), note.strip())
        except WatchStoreError as exc:
            return error_page(request, 404, str(exc))
        response = RedirectResponse(f"/release/{release_id}?saved=1#labels", status_code=303)
        response.set_cookie(REVIEWER_COOKIE, reviewer, max_age=365 * 86_400, httponly=True, samesite="strict")
        return response

    def dashboard_page(request: Request) -> Response:
        now = clock()
        end = (math.floor(now / 3600) + 1) * 3600
        start = end - DASHBOARD_HOURS * 3600
        by_hour = {h.hour: h for h in store.hourly(since=start, until=end)}
        scanned_bars, share_bars = [], []
        for i in range(DASHBOARD_HOURS):
            hour = start + i * 3600
            stats = by_hour.get(hour)
            scanned, flagged = (stats.scanned, stats.flagged) if stats else (0, 0)
            tick = datetime.fromtimestamp(hour, UTC).strftime("%d %Hh")
            scanned_bars.append(charts.Bar(tick, scanned, f"{_when(hour)}: {scanned} scanned, {flagged} flagged"))
            share = flagged / scanned if scanned else 0.0
            share_bars.append(charts.Bar(tick, share, f"{_when(hour)}: {flagged} of {scanned} flagged", alert=True))
        agreement = store.label_agreement()
        agreement_bars = [
            charts.Bar("confirmed", agreement.flagged_confirmed, "flagged and labelled malicious"),
            charts.Bar("false alarms", agreement.false_alarms, "flagged and labelled benign", alert=True),
            charts.Bar("missed", agreement.missed, "not flagged, labelled malicious", alert=True),
        ]
        return render(
            request, "dashboard.html", stats=store.stats(), agreement=agreement,
            scanned_chart=charts.bar_chart(scanned_bars,
                                           title=f"Releases scanned per hour (last {DASHBOARD_HOURS} h, UTC)"),
            share_chart=charts.bar_chart(share_bars, title="Share flagged per hour", percent=True, max_value=1.0),
            agreement_chart=charts.bar_chart(agreement_bars, title="Reviewed releases: labels against the model",
                                             width=420, ticks_every=1),
            hours=DASHBOARD_HOURS,
        )

    def style(request: Request) -> Response:
        return Response(css, media_type="text/css")

    async def guard_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await _checked(request, call_next)
        for key, value in SECURITY_HEADERS.items():
            response.headers[key] = value
        return response

    async def _checked(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = (request.url.hostname or "").lower()
        if loopback_only and host not in LOOPBACK_NAMES:
            return PlainTextResponse("this server answers only to localhost / 127.0.0.1 (Host header refused)",
                                     status_code=400)
        if guard.token is not None:
            bearer = request.headers.get("authorization", "")
            presented = request.cookies.get(TOKEN_COOKIE) or (bearer[7:] if bearer.lower().startswith("bearer ")
                                                              else None)
            from_query = request.query_params.get("token")
            if not guard.token_ok(presented):
                if from_query is not None and request.method == "GET" and guard.token_ok(from_query):
                    rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                    redirect = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
                    redirect.set_cookie(TOKEN_COOKIE, from_query, httponly=True, samesite="strict")
                    return redirect
                return PlainTextResponse("a token is required: open the URL `malseq serve` printed at start, "
                                         "or send `Authorization: Bearer TOKEN`", status_code=401)
        session = request.cookies.get(SESSION_COOKIE)
        new_session = not session or len(session) > 100
        request.state.session = Guard.new_session() if new_session else session
        if request.method == "POST":
            site = request.headers.get("sec-fetch-site")
            origin = request.headers.get("origin")
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if (site is not None and site not in ("same-origin", "none")) or (origin is not None and origin != own):
                return PlainTextResponse("cross-site request refused", status_code=403)
        response = await call_next(request)
        if new_session:
            response.set_cookie(SESSION_COOKIE, request.state.session, httponly=True, samesite="strict")
        return response

    routes = [
        Route("/", queue_page),
        Route("/release/{release_id:int}", release_page),
        Route("/release/{release_id:int}/label", label_post, methods=["POST"]),
        Route("/dashboard", dashboard_page),
        Route("/static/style.css", style),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard_requests)])

    async def not_found(request: Request, exc: Exception) -> Response:
        if not hasattr(request.state, "session"):
            request.state.session = Guard.new_session()
        return error_page(request, 404, "no such page")

    app.add_exception_handler(404, not_found)
    return app


_STATIC_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
header { background: #1f2d3d; color: #fff; padding: 8px 20px; display: flex; gap: 24px; align-items: baseline; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header .db { color: #aab; font-size: 12px; margin-left: auto; }
main { padding: 16px 20px; max-width: 1200px; }
h1 { font-size: 20px; margin: 8px 0 12px; word-break: break-all; }
h3 { font-size: 14px; margin: 14px 0 6px; }
h2 { font-size: 16px; margin: 22px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap, .wrap { word-break: break-all; }
.verdict-malicious { color: #b3261e; font-weight: 700; }
.verdict-benign { color: #1e6b34; }
.verdict-error, .verdict-pending { color: #8a6d00; }
.tag { display: inline-block; padding: 0 6px; border-radius: 3px; background: #e8eaed; font-size: 12px; }
.tag-malicious { background: #f9d6d3; } .tag-benign { background: #d4edda; } .tag-unsure { background: #fff3cd; }
form.filters { display: flex; gap: 10px; flex-wrap: wrap; align-items: end; margin-bottom: 12px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
.pager { margin: 10px 0; display: flex; gap: 14px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.meta dt { color: #555; } dl.meta dd { margin: 0; word-break: break-all; white-space: pre-wrap; }
.scores { display: flex; gap: 24px; align-items: baseline; margin-bottom: 8px; }
.big { font-size: 28px; font-weight: 700; }
.note { color: #555; font-size: 12px; }
.warn { background: #fff3cd; padding: 6px 10px; border-radius: 4px; }
.saved { background: #d4edda; padding: 6px 10px; border-radius: 4px; }
.excerpt { margin: 10px 0 16px; border: 1px solid #ddd; background: #fff; overflow-x: auto; }
.excerpt .file { background: #f0f2f5; padding: 3px 8px; font-family: ui-monospace, monospace; font-size: 12px;
  word-break: break-all; }
.code pre { margin: 0; font: 12px/1.4 ui-monospace, monospace; }
.code pre .err { border: none; }  /* excerpts start mid-token: no error boxes */
.code td.linenos { color: #888; text-align: right; padding-right: 8px; user-select: none; width: 1%; }
.code .hll { background-color: #ffe9a8; display: block; }
.code table { width: auto; }
code, .mono { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
form.label { display: flex; gap: 8px; flex-wrap: wrap; align-items: end; background: #fff; padding: 10px;
  border: 1px solid #ddd; }
form.label label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
form.label textarea { width: 360px; height: 48px; }
button { padding: 5px 12px; border: 1px solid #888; border-radius: 4px; background: #fff; cursor: pointer; }
button.malicious { border-color: #b3261e; color: #b3261e; } button.benign { border-color: #1e6b34; color: #1e6b34; }
.cards { display: flex; gap: 16px; flex-wrap: wrap; margin-bottom: 12px; }
.card { background: #fff; border: 1px solid #ddd; padding: 8px 14px; min-width: 120px; }
.card .big { font-size: 22px; }
.step-install td:first-child { border-left: 3px solid #b3261e; }
"""
