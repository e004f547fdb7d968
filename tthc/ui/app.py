"""The dashboard's FastAPI app: indicators, data quality, portal sync, citizen lookups, runs.

Mounted by ``plugins/tthc_ui.py`` under ``/tthc`` in Airflow's API server. Pages are rendered on
the server (Jinja2, autoescaped) with inline SVG charts; the only other resources are the
packaged stylesheet and icon, served through a protected route. Every request must carry an
Airflow user (see :mod:`tthc.ui.auth`); there is no OpenAPI schema or docs page.

Routes (relative to the mount point):

======================  ==================================================================
``/``                   overview: held dossiers, failed publishes, the last run
``/indicators/``        Decision 766 indicators per period type, period and scope
``/dq/``                data quality: rules failing per agency, held dossiers, trend
``/sync/``              portal sync: published / pending / failed, failing dossier codes
``/lookup/``            population-database reconciliation classes per agency
``/runs/``              pipeline runs and the stages of one run
``/api/overview.json``  the overview figures as JSON
``/static/{name}``      the stylesheet and the navigation icon
======================  ==================================================================

The warehouse is the one of ``TTHC_WAREHOUSE_URL`` (:func:`tthc.warehouse.db.get_engine`); the
pages only read it. Routes are plain ``def`` functions: FastAPI runs them in its thread pool, so
the blocking database calls never stall the API server's event loop.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tthc.ui import auth, charts, fmt, labels
from tthc.ui import queries as q

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_FILES = {"tthc.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}
TITLE = "Chỉ số & Chất lượng dữ liệu"
PERIOD_TYPE_ORDER = ("month", "quarter", "year", "day", "run")
SCOPE_ORDER = ("agency", "source", "province")
DEFAULT_INDICATOR = "2.1_on_time"

NAV = (
    ("home", "", "Tổng quan"),
    ("indicators", "indicators/", "Chỉ số 766"),
    ("dq", "dq/", "Chất lượng dữ liệu"),
    ("sync", "sync/", "Đồng bộ Cổng DVCQG"),
    ("lookup", "lookup/", "Đối chiếu dân cư"),
    ("runs", "runs/", "Lần chạy"),
)

# Pages are only ever framed by the Airflow UI (same origin) and load nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fmt=fmt, labels=labels, title=TITLE, nav=NAV)
    env.filters.update(num=fmt.num, pct=fmt.pct, day=fmt.day, when=fmt.when, duration=fmt.duration)
    return env


def _engine() -> sa.Engine:
    from tthc.warehouse.db import get_engine

    return get_engine()


def _base(request: Request) -> str:
    """The mount point as the browser sees it (``/tthc``, behind any ``[api] base_url`` prefix)."""
    return request.scope.get("root_path", "").rstrip("/")


def render(request: Request, template: str, *, page: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    body = (
        _env()
        .get_template(template)
        .render(
            base=_base(request),
            page=page,
            airflow_home=(request.scope.get("app_root_path") or "") + "/",
            **ctx,
        )
    )
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def _pick(value: str | None, allowed: list[str] | tuple[str, ...], default: str | None) -> str | None:
    return value if value is not None and value in allowed else default


def _warehouse_page(page: str) -> Callable[[Callable[..., HTMLResponse]], Callable[..., HTMLResponse]]:
    """Render a friendly 503 page when the warehouse cannot be read (no details leak)."""

    def wrap(fn: Callable[..., HTMLResponse]) -> Callable[..., HTMLResponse]:
        @functools.wraps(fn)  # FastAPI reads the parameters through __wrapped__
        def inner(request: Request, *args: Any, **kwargs: Any) -> HTMLResponse:
            try:
                return fn(request, *args, **kwargs)
            except sa.exc.SQLAlchemyError:
                log.exception("dashboard page %s: warehouse query failed", page)
                return render(request, "unavailable.html", page=page, status_code=503)

        return inner

    return wrap


# ---- pages --------------------------------------------------------------------------------------


def home(request: Request) -> HTMLResponse:
    data = q.overview(_engine(), _now())
    return render(request, "home.html", page="home", o=data)


def _now() -> Any:
    from tthc.timeutil import vn_now

    return vn_now()


def overview_json(request: Request) -> JSONResponse:
    try:
        data = q.overview(_engine(), _now())
    except sa.exc.SQLAlchemyError:
        log.exception("dashboard overview: warehouse query failed")
        return JSONResponse({"detail": "warehouse unavailable"}, status_code=503, headers=SECURITY_HEADERS)
    run = data["last_run"]
    if run is not None:
        run = {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in run.items()
            if k
            in (
                "run_id",
                "started_at",
                "finished_at",
                "failed_stages",
                "extracted",
                "published",
                "duration_s",
            )
        }
    return JSONResponse({**data, "last_run": run}, headers=SECURITY_HEADERS)


def indicators_page(
    request: Request,
    period_type: str | None = None,
    scope: str | None = None,
    period: str | None = None,
    indicator: str | None = None,
    code: str | None = None,
) -> HTMLResponse:
    eng = _engine()
    periods = q.indicator_periods(eng)
    if not periods:
        return render(request, "indicators.html", page="indicators", empty=True)
    types = [t for t in PERIOD_TYPE_ORDER if t in periods] + sorted(set(periods) - set(PERIOD_TYPE_ORDER))
    ptype = _pick(period_type, types, types[0])
    assert ptype is not None
    scopes = [s for s in SCOPE_ORDER if s in periods[ptype]] + sorted(set(periods[ptype]) - set(SCOPE_ORDER))
    scope = _pick(scope, scopes, scopes[0])
    assert scope is not None
    starts = periods[ptype][scope]
    start = starts[0]
    if period:
        try:
            wanted = date.fromisoformat(period)
        except ValueError:
            wanted = None
        if wanted in starts:
            start = wanted  # type: ignore[assignment]

    values = q.indicator_values(eng, ptype, scope, start)
    catalogue = labels.indicators()
    present = {r["indicator_id"] for r in values}
    ordered = [i for i in catalogue if i in present] + sorted(present - set(catalogue))
    ratio_ids = [i for i in ordered if labels.indicator(i).kind == "ratio"]
    count_ids = [i for i in ordered if labels.indicator(i).kind != "ratio"]

    cells: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for r in values:
        cells[r["scope_code"]][r["indicator_id"]] = r
        acc = sums[r["indicator_id"]]
        acc[0] += r["numerator"] or 0
        acc[1] += r["denominator"] or 0
        acc[2] += 0 if r["denominator"] is None else 1
    totals: dict[str, dict[str, Any]] = {}
    for iid, (num, den, has_den) in sums.items():
        value = (num / den if den else None) if has_den else num
        totals[iid] = {"numerator": num, "denominator": den if has_den else None, "value": value}
    codes = sorted(cells)

    chart_id = _pick(indicator, ordered, DEFAULT_INDICATOR if DEFAULT_INDICATOR in present else None)
    chart_id = chart_id or (ratio_ids[0] if ratio_ids else (ordered[0] if ordered else None))
    bar_chart = trend_chart = None
    trend_code = _pick(code, codes, None)
    if chart_id is not None:
        info = labels.indicator(chart_id)
        is_ratio = info.kind == "ratio"
        value_fmt = fmt.pct if is_ratio else fmt.num
        bars = [
            charts.Bar(
                label=labels.scope_name(scope, c) or c,
                sublabel=c if labels.scope_name(scope, c) else "",
                value=cells[c].get(chart_id, {}).get("value"),
                display=value_fmt(cells[c].get(chart_id, {}).get("value")),
            )
            for c in codes
            if chart_id in cells[c]
        ]
        bar_chart = charts.hbar_chart(
            bars, title=f"{info.label_vi} – {fmt.period(ptype, start)}", max_value=1.0 if is_ratio else None
        )
        trend = q.indicator_trend(eng, ptype, scope, chart_id, trend_code)
        series_name = (labels.scope_name(scope, trend_code) or trend_code) if trend_code else "Tổng"
        trend_chart = charts.line_chart(
            [fmt.short_period(ptype, r["period_start"]) for r in trend],
            [charts.Series(series_name, [r["value"] for r in trend])],
            title=f"Diễn biến: {info.label_vi}",
            y_format=(lambda v: fmt.pct(v, 0)) if is_ratio else fmt.num,
            y_max=1.0 if is_ratio else None,
        )
    computed = max((r["computed_at"] for r in values if r["computed_at"]), default=None)
    return render(
        request,
        "indicators.html",
        page="indicators",
        empty=False,
        types=types,
        ptype=ptype,
        scopes=scopes,
        scope=scope,
        starts=starts,
        start=start,
        codes=codes,
        cells=cells,
        totals=totals,
        ratio_ids=ratio_ids,
        count_ids=count_ids,
        ordered=ordered,
        chart_id=chart_id,
        trend_code=trend_code,
        bar_chart=bar_chart,
        trend_chart=trend_chart,
        computed=computed,
    )


def dq_page(request: Request, source: str | None = None, run: str | None = None) -> HTMLResponse:
    eng = _engine()
    sources = q.quality_sources(eng)
    source = _pick(source, sources, None)
    notice = None
    runs = q.latest_validation_runs(eng, source)
    if run:
        chosen = [r for r in q.validation_runs(eng, source, limit=1000) if r.run_id == run]
        if chosen:
            runs = chosen
        else:
            notice = "Không có kết quả kiểm tra cho lần chạy được chọn; đang hiển thị lần chạy mới nhất."
    rules = q.failing_rules(eng, runs)
    for r in rules:
        info = labels.rule(r["rule_id"])
        r["description_vi"] = info.description_vi
        r["rate"] = r["failed"] / r["evaluated"] if r["evaluated"] else None
    rule_totals: Counter[str] = Counter()
    for r in rules:
        rule_totals[r["rule_id"]] += r["failed"]
    rule_chart = charts.hbar_chart(
        [
            charts.Bar(label=rid, value=n, display=fmt.num(n))
            for rid, n in sorted(rule_totals.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
        ],
        title="Số lượt vi phạm theo quy tắc (lần kiểm tra mới nhất)",
        color=charts.PALETTE[3],
        label_width=260,
    )
    by_agency = q.issues_by_agency(eng, runs)
    quality = q.quality_by_agency(eng, source)
    held = q.held(eng, source)
    for h in held.rows:
        h["reasons"] = q.decode_reasons(h["reasons"])
    trend = q.quality_trend(eng, source)
    trend_chart = charts.line_chart(
        [fmt.when(t["at"]) for t in trend],
        [
            charts.Series("Hồ sơ lỗi nghiêm trọng", [t["critical"] for t in trend]),
            charts.Series("Hồ sơ có cảnh báo", [t["warning"] for t in trend]),
            charts.Series("Hồ sơ bị cách ly", [t["quarantined"] for t in trend]),
        ],
        title="Diễn biến chất lượng dữ liệu qua các lần chạy",
    )
    return render(
        request,
        "dq.html",
        page="dq",
        sources=sources,
        source=source,
        runs=runs,
        notice=notice,
        rules=rules,
        rule_chart=rule_chart,
        by_agency=by_agency,
        quality=quality,
        held=held,
        trend=trend,
        trend_chart=trend_chart,
    )


def sync_page(request: Request, source: str | None = None) -> HTMLResponse:
    eng = _engine()
    by_agency = q.publish_by_agency(eng)
    waiting = q.publish_waiting(eng)
    sources = sorted({r["source_id"] for r in by_agency} | set(waiting))
    source = _pick(source, sources, None)
    total_failed, failures = q.publish_failures(eng, source)
    outbox = q.outbox_counts(eng)
    totals = {k: sum(r[k] for r in by_agency) for k in ("published", "pending", "failed")}
    bars = []
    for r in by_agency:
        n = r["published"] + r["pending"] + r["failed"]
        rate = r["published"] / n if n else None
        name = labels.agency_name(r["agency_code"])
        bars.append(
            charts.Bar(
                label=name or (r["agency_code"] or ""),
                sublabel=r["agency_code"] or "",
                value=rate,
                display=fmt.pct(rate),
            )
        )
    chart = charts.hbar_chart(
        bars, title="Tỷ lệ hồ sơ đã đồng bộ theo đơn vị", max_value=1.0, color=charts.PALETTE[2]
    )
    return render(
        request,
        "sync.html",
        page="sync",
        by_agency=by_agency,
        waiting=waiting,
        sources=sources,
        source=source,
        total_failed=total_failed,
        failures=failures,
        outbox=outbox,
        totals=totals,
        chart=chart,
    )


def lookup_page(request: Request) -> HTMLResponse:
    eng = _engine()
    rows = q.match_classes(eng)
    classes = [c for c in labels.MATCH_CLASS_LABELS if any(r["match_class"] == c for r in rows)]
    classes += sorted({r["match_class"] for r in rows} - set(classes))
    table: dict[tuple[str, str | None], Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for r in rows:
        table[(r["source_id"], r["agency_code"])][r["match_class"]] += int(r["n"])
        totals[r["match_class"]] += int(r["n"])
    same_person = ("matched", "matched_normalised")
    lines = []
    for (sid, agency), counts in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        n = sum(counts.values())
        lines.append(
            {
                "source_id": sid,
                "agency_code": agency,
                "counts": counts,
                "total": n,
                "rate": sum(counts[c] for c in same_person) / n if n else None,
            }
        )
    grand = sum(totals.values())
    chart = charts.hbar_chart(
        [
            charts.Bar(
                label=labels.MATCH_CLASS_LABELS.get(c, c),
                sublabel=c,
                value=totals[c],
                display=fmt.num(totals[c]),
            )
            for c in classes
        ],
        title="Kết quả đối chiếu với Cơ sở dữ liệu quốc gia về dân cư",
        color=charts.PALETTE[4],
        label_width=320,
    )
    requests_30d = q.lookup_requests(eng, _now() - timedelta(days=30))
    return render(
        request,
        "lookup.html",
        page="lookup",
        classes=classes,
        lines=lines,
        totals=totals,
        grand=grand,
        grand_rate=sum(totals[c] for c in same_person) / grand if grand else None,
        chart=chart,
        requests_30d=requests_30d,
    )


def runs_page(request: Request, run: str | None = None) -> HTMLResponse:
    eng = _engine()
    runs = q.recent_runs(eng, limit=30)
    run_ids = [r["run_id"] for r in runs]
    selected = _pick(run, run_ids, run_ids[0] if run_ids else None)
    if run and selected != run:  # an older run than the list shows: look it up directly
        stages = q.run_stages(eng, run)
        if stages:
            selected = run
    stages = q.run_stages(eng, selected) if selected else []
    chrono = list(reversed(runs))
    chart = charts.line_chart(
        [fmt.when(r["started_at"]) for r in chrono],
        [
            charts.Series("Bản ghi lấy về", [r["extracted"] for r in chrono]),
            charts.Series("Đã đồng bộ", [r["published"] for r in chrono]),
            charts.Series("Bị cách ly", [r["quarantined"] for r in chrono]),
            charts.Series("Đã đối chiếu", [r["matched"] for r in chrono]),
        ],
        title="Số bản ghi qua các lần chạy",
    )
    return render(request, "runs.html", page="runs", runs=runs, selected=selected, stages=stages, chart=chart)


def static_file(name: str) -> Response:
    media = STATIC_FILES.get(name)
    if media is None:
        raise HTTPException(status_code=404, detail="Not Found")
    return Response(
        (STATIC_DIR / name).read_bytes(),
        media_type=media,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"},
    )


# ---- the app ------------------------------------------------------------------------------------


def create_app() -> FastAPI:
    """The dashboard app, protected by Airflow's authentication, without docs or OpenAPI schema."""
    app = FastAPI(
        title=TITLE,
        dependencies=auth.route_dependencies(),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(auth.RequireAirflowUser)
    html = {"response_class": HTMLResponse}
    app.add_api_route("/", _warehouse_page("home")(home), methods=["GET"], **html)
    app.add_api_route("/indicators/", _warehouse_page("indicators")(indicators_page), methods=["GET"], **html)
    app.add_api_route("/dq/", _warehouse_page("dq")(dq_page), methods=["GET"], **html)
    app.add_api_route("/sync/", _warehouse_page("sync")(sync_page), methods=["GET"], **html)
    app.add_api_route("/lookup/", _warehouse_page("lookup")(lookup_page), methods=["GET"], **html)
    app.add_api_route("/runs/", _warehouse_page("runs")(runs_page), methods=["GET"], **html)
    app.add_api_route("/api/overview.json", overview_json, methods=["GET"])
    app.add_api_route("/static/{name}", static_file, methods=["GET"])
    return app
