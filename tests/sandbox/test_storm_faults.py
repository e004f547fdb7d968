"""The sandbox's faults of the fault storm (``sandbox.faults``): credentials that expire early
(``token_expire``, igate and portal) and records that change while a client pages
(``page_touch``, igate), over real HTTP."""

from __future__ import annotations

import pytest
import requests

from sandbox.faults import FaultProfile


def _faults(url: str, **profile) -> None:
    r = requests.post(f"{url}/_sandbox/faults", json=profile, timeout=5)
    assert r.status_code == 200, r.text


def _token(url: str, src: dict) -> str:
    r = requests.post(
        f"{url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": src["client_id"],
            "client_secret": src["client_secret"],
        },
        timeout=5,
    )
    return r.json()["access_token"]


def _page(url: str, token: str, **params) -> requests.Response:
    return requests.get(
        f"{url}/api/v1/dossiers", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )


def test_profile_keys_are_validated():
    assert not FaultProfile(token_expire=0.1).is_quiet and not FaultProfile(page_touch=0.1).is_quiet
    for bad in (
        {"token_expire": 1.5},
        {"page_touch": -0.1},
        {"page_touch_count": -1},
        {"page_touch_count": 1.5},
    ):
        with pytest.raises(ValueError):
            FaultProfile.from_dict(bad)


def test_igate_token_expires_early_but_never_a_fresh_one(sandbox_factory):
    sb = sandbox_factory(simulators=("igate",))
    url, src = sb.urls["igate"], sb.igate_sources[0]
    _faults(url, seed=1, token_expire=1.0)
    token = _token(url, src)
    assert _page(url, token, size=1).status_code == 200  # a fresh token is never expired early
    r = _page(url, token, size=1)
    assert r.status_code == 401 and r.json()["error_description"] == "Access token expired"
    assert _page(url, token, size=1).status_code == 401  # and it stays expired
    assert _page(url, _token(url, src), size=1).status_code == 200
    state = requests.get(f"{url}/_sandbox/state", timeout=5).json()
    assert state["counts"]["tokens_expired_early"] == 1 and state["faults"]["injected"] == {"token_expire": 1}


def test_igate_records_change_between_page_requests(sandbox_factory):
    sb = sandbox_factory(simulators=("igate",))
    url, src = sb.urls["igate"], sb.igate_sources[0]
    now = requests.get(f"{url}/_sandbox/clock", timeout=5).json()["now_vn"]
    token = _token(url, src)
    window = {"updatedTo": now, "size": 10}
    before = _page(url, token, page=0, **window).json()
    _faults(url, seed=3, page_touch=1.0, page_touch_count=2)
    first = _page(url, token, page=0, **window).json()
    second = _page(url, token, page=1, **window).json()
    # two records of the window changed right after page 0 (now their updatedDate is "now", past
    # the window's end): everything behind them moved up, so a naive page 1 skips records
    assert before["totalElements"] > 20
    assert first["totalElements"] == before["totalElements"]
    assert second["totalElements"] == before["totalElements"] - 2
    state = requests.get(f"{url}/_sandbox/state", timeout=5).json()
    assert state["counts"]["records_touched_while_paging"] == 4  # after each of the two pages
    assert state["faults"]["injected"] == {"page_touch": 2, "records_touched": 4}


def test_portal_session_expires_early_but_never_a_fresh_one(sandbox_factory):
    sb = sandbox_factory(simulators=("portal",))
    url = sb.urls["portal"]
    _faults(url, seed=1, token_expire=1.0)

    def auth() -> str:
        return requests.post(f"{url}/api/auth", json=sb.portal_credentials, timeout=5).json()["session"]

    def lookup(session: str) -> dict:
        body = {"session": session, "service": "TraCuuHoSo", "mahoso": "A"}
        return requests.post(f"{url}/api/integration", json=body, timeout=5).json()

    session = auth()
    assert lookup(session)["error_code"] == "-4"  # accepted (the dossier is unknown)
    r = lookup(session)
    assert r["error_code"] == "-1" and "hết hạn" in r["message"]
    assert lookup(auth())["error_code"] == "-4"
    state = requests.get(f"{url}/_sandbox/state", timeout=5).json()
    assert state["session_refusals"] == 1 and state["faults"]["injected"] == {"token_expire": 1}
