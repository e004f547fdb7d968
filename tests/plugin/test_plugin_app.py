"""The dashboard plugin inside Airflow's API app (in process, FastAPI TestClient).

Proves: the plugin is discovered and mounted at /tthc with its navigation entry; every route
(pages, JSON, static files, unknown paths, docs/OpenAPI) refuses a caller without a valid
Airflow token; a valid token (bearer or the UI's ``_token`` cookie) shows the figures the
warehouse holds; no personal data reaches any page; nothing is loaded from another origin.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tthc.ui import NAV_NAME

from .seed import EXPECTED, PII_MARKERS, RUN1, RUN2, SRC_T, SRC_Y, T6, page_text

Q_RUN1, Q_RUN2 = quote(RUN1, safe=""), quote(RUN2, safe="")  # run ids hold '+' and ':'

PAGES = ["/tthc/", "/tthc/indicators/", "/tthc/dq/", "/tthc/sync/", "/tthc/lookup/", "/tthc/runs/"]
EVERY_ROUTE = [
    *PAGES,
    "/tthc/api/overview.json",
    "/tthc/static/tthc.css",
    "/tthc/static/icon.svg",
    "/tthc/docs",
    "/tthc/redoc",
    "/tthc/openapi.json",
    "/tthc/docs/oauth2-redirect",
    "/tthc/no-such-page",
    "/tthc/dq",  # the slash redirect must not answer either
]
# Every page with the parameters that change what it reads: the privacy check walks them all.
PAGE_VARIANTS = [
    *PAGES,
    "/tthc/indicators/?period_type=month&scope=agency&period=2026-10-01&indicator=received",
    "/tthc/indicators/?period_type=month&scope=source&code=igate_tinh",
    "/tthc/indicators/?scope=agency&code=000.00.12.H40&indicator=3.3_online",
    f"/tthc/dq/?source={SRC_T}",
    f"/tthc/dq/?source={SRC_Y}&run={Q_RUN2}",
    f"/tthc/dq/?source={SRC_T}&run={Q_RUN1}",
    f"/tthc/sync/?source={SRC_T}",
    f"/tthc/runs/?run={Q_RUN1}",
    f"/tthc/runs/?run={Q_RUN2}",
    "/tthc/api/overview.json",
]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _get(client, path: str, token: str | None = None, **kw):
    return client.get(path, headers=_bearer(token) if token else {}, follow_redirects=False, **kw)


# ---- mounting ------------------------------------------------------------------------------------


def test_plugin_is_mounted_with_a_navigation_entry(api):
    client, token = api
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    assert any(a["url_prefix"] == "/tthc" for a in apps)
    r = _get(client, "/api/v2/plugins", token)
    assert r.status_code == 200
    plugin = next(p for p in r.json()["plugins"] if p["name"] == "tthc_ui")
    view = next(v for v in plugin["external_views"] if v["name"] == NAV_NAME)
    assert view["href"] == "tthc/" and view["destination"] == "nav" and view["url_route"] == "tthc"


# ---- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EVERY_ROUTE)
def test_without_a_token_every_route_is_refused(api, path):
    client, _ = api
    r = _get(client, path)
    assert r.status_code == 401, r.text
    assert "Zqxv" not in r.text and "cccd_format" not in r.text


@pytest.mark.parametrize("path", EVERY_ROUTE)
def test_with_a_bad_token_every_route_is_refused(api, path):
    client, token = api
    r = _get(client, path, token[:-4] + "AAAA")
    assert r.status_code == 403, r.text
    r = _get(client, path, "not-a-jwt")
    assert r.status_code == 403


def test_a_bad_session_cookie_is_refused(api):
    client, _ = api
    r = client.get("/tthc/dq/", cookies={"_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403


def test_an_expired_token_is_refused(api):
    client, _ = api
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    expired = get_auth_manager().generate_jwt(
        SimpleAuthManagerUser(username="admin", role="admin"), expiration_time_in_seconds=-60
    )
    assert _get(client, "/tthc/dq/", expired).status_code == 401


def test_a_user_without_a_role_is_forbidden(api):
    client, _ = api
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    nobody = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
    r = _get(client, "/tthc/dq/", nobody)
    assert r.status_code == 403
    assert "cccd_format" not in r.text


def test_a_viewer_may_read(api):
    client, _ = api
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    viewer = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="v", role="viewer"))
    assert _get(client, "/tthc/dq/", viewer).status_code == 200


def test_browser_without_session_gets_a_login_hint_not_data(api):
    client, _ = api
    r = client.get("/tthc/dq/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 401
    assert "Chưa đăng nhập" in r.text and "cccd_format" not in r.text


def test_the_ui_session_cookie_is_accepted(api):
    client, token = api
    r = client.get("/tthc/dq/", cookies={"_token": token}, follow_redirects=False)
    assert r.status_code == 200
    assert "cccd_format" in r.text


def test_docs_and_openapi_do_not_exist_even_when_logged_in(api):
    client, token = api
    for path in ("/tthc/docs", "/tthc/redoc", "/tthc/openapi.json"):
        assert _get(client, path, token).status_code == 404


def test_only_packaged_static_files_are_served(api):
    client, token = api
    assert _get(client, "/tthc/static/tthc.css", token).headers["content-type"].startswith("text/css")
    for path in ("/tthc/static/app.py", "/tthc/static/..%2Fapp.py", "/tthc/static/templates"):
        assert _get(client, path, token).status_code == 404


# ---- figures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_pages_show_the_figures_the_warehouse_holds(api, path):
    client, token = api
    r = _get(client, path, token)
    assert r.status_code == 200
    text = page_text(r.text)
    missing = [s for s in EXPECTED[path] if s not in text]
    assert not missing, f"{path} lacks {missing}"


def test_dq_is_where_the_emails_point(api):
    client, token = api
    r = _get(client, "/tthc/dq/", token)
    assert r.status_code == 200 and "Chất lượng dữ liệu" in r.text


def test_indicators_follow_the_selectors(api):
    client, token = api
    text = page_text(_get(client, "/tthc/indicators/?period_type=month&period=2026-10-01", token).text)
    assert "Tháng 10/2026" in text and "50,0%" in text and "87,5%" not in text
    text = page_text(_get(client, "/tthc/indicators/?period_type=month&scope=source", token).text)
    assert "igate_tinh" in text and "83,3%" in text
    # unknown selector values fall back to the defaults instead of failing
    r = _get(client, "/tthc/indicators/?period_type=bogus&scope=<b>&period=notadate", token)
    assert r.status_code == 200 and "87,5%" in r.text and "<b>" not in r.text


def test_dq_filters_by_source_and_run(api):
    client, token = api
    text = page_text(_get(client, f"/tthc/dq/?source={SRC_Y}", token).text)
    assert "unparseable_received_at" in text and "cccd_format" not in text
    text = page_text(_get(client, f"/tthc/dq/?source={SRC_T}&run={Q_RUN1}", token).text)
    assert "required_applicant_name" in text and "Thiếu họ tên chủ hồ sơ" in text


def test_runs_page_shows_the_stages_of_a_run(api):
    client, token = api
    text = page_text(_get(client, f"/tthc/runs/?run={Q_RUN2}", token).text)
    for s in ("Đối chiếu dân cư", "Đồng bộ Cổng DVCQG", "Thất bại", "chi tiết lỗi trong nhật ký"):
        assert s in text


def test_overview_json(api):
    client, token = api
    r = _get(client, "/tthc/api/overview.json", token)
    assert r.status_code == 200
    body = r.json()
    assert (body["held"], body["publish_failed"], body["published"]) == (4, 1, 2)
    assert body["last_run"]["run_id"] == RUN2 and body["last_run"]["extracted"] == 8


# ---- privacy and safety --------------------------------------------------------------------------


def test_no_personal_data_on_any_page(api):
    client, token = api
    for path in PAGE_VARIANTS:
        r = _get(client, path, token)
        assert r.status_code == 200, path
        leaked = [m for m in PII_MARKERS if m in r.text]
        assert not leaked, f"{path} shows personal data: {leaked}"


def test_error_texts_are_escaped_and_scrubbed(api):
    client, token = api
    body = _get(client, "/tthc/sync/", token).text
    assert T6 in body
    assert "<script>alert" not in body and "&lt;script&gt;" in body
    assert "079188000006" not in body and "079*******06" in body


def test_pages_load_nothing_from_elsewhere(api):
    client, token = api
    for path in PAGES:
        r = _get(client, path, token)
        assert "<script" not in r.text
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+", r.text)) - {"http://www.w3.org"}
        assert not urls, f"{path} refers to {urls}"
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
        assert r.headers["cache-control"] == "no-store"


def test_an_unreadable_warehouse_gives_a_503_page(api, tmp_path, monkeypatch):
    client, token = api
    monkeypatch.setenv("TTHC_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    r = _get(client, "/tthc/dq/", token)
    assert r.status_code == 503 and "Kho dữ liệu chưa sẵn sàng" in r.text
    assert "no such table" not in r.text


def test_dates_are_vietnam_formatted(api):
    client, token = api
    text = page_text(_get(client, "/tthc/sync/", token).text)
    assert "21/11/2026 08:01" in text  # the second failed attempt: seed.T0 + 1 minute


def test_the_seed_does_hold_personal_data(seeded_warehouse):
    """Positive control: the markers the privacy checks look for are really in the warehouse."""
    from tthc.warehouse import db, repo

    dossiers = repo.load_dossiers(db.get_engine(seeded_warehouse), SRC_T)
    assert any("Zqxvmarker" in (d.applicant_name or "") for d in dossiers)
    assert {d.applicant_id_number for d in dossiers} <= set(PII_MARKERS)
