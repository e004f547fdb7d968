"""The fault profile itself: validation, seeded determinism, what each fault looks like on the wire."""

from __future__ import annotations

import pytest
import requests

from sandbox.faults import FaultInjector, FaultProfile


def test_profile_validation():
    assert FaultProfile.from_dict({}).is_quiet
    with pytest.raises(ValueError, match="unknown"):
        FaultProfile.from_dict({"reset_share": 0.1})
    with pytest.raises(ValueError, match="0..1"):
        FaultProfile.from_dict({"error_5xx": 1.5})
    with pytest.raises(ValueError, match="sum"):
        FaultProfile.from_dict({"error_5xx": 0.6, "timeout": 0.6})
    with pytest.raises(ValueError, match="commit_lost_mode"):
        FaultProfile.from_dict({"commit_lost_mode": "maybe"})
    p = FaultProfile.from_dict({"seed": 3, "rate_429": 0.2, "retry_after": 2})
    assert FaultProfile.from_dict(p.to_dict()) == p


def test_same_seed_same_faults():
    profile = FaultProfile(seed=5, error_5xx=0.2, rate_429=0.2, reset=0.1, timeout=0.1)
    runs = []
    for _ in range(2):
        inj = FaultInjector(profile)
        runs.append([(d.kind, d.status) for d in (inj.decide(can_commit_lose=False) for _ in range(200))])
    assert runs[0] == runs[1]
    kinds = [k for k, _ in runs[0]]
    assert 20 < kinds.count("error_5xx") < 60 and kinds.count(None) > 60
    # commit_lost only where the simulator says a request commits
    inj = FaultInjector(FaultProfile(commit_lost=1.0))
    assert inj.decide(can_commit_lose=False).kind is None
    assert inj.decide(can_commit_lose=True).kind == "commit_lost"


def test_wire_shapes(sandbox_factory):
    sb = sandbox_factory(simulators=("portal",))
    url = sb.urls["portal"]
    body = {"session": "x", "madonvi": "A", "service": "TraCuuHoSo", "mahoso": "A"}
    seen = {}
    requests.post(f"{url}/_sandbox/faults", json={"seed": 2, "error_5xx": 1.0}, timeout=5)
    for _ in range(30):
        r = requests.post(f"{url}/api/integration", json=body, timeout=5)
        seen.setdefault(r.status_code, r)
    assert set(seen) == {500, 502, 503}
    assert seen[500].json()["error_code"] == "500"  # the application's own error
    assert seen[502].headers["Content-Type"].startswith("text/html")  # the gateway's page, not JSON
    assert "502 Bad Gateway" in seen[502].text

    requests.post(f"{url}/_sandbox/faults", json={"timeout": 1.0, "timeout_seconds": 0.2}, timeout=5)
    r = requests.post(f"{url}/api/integration", json=body, timeout=5)  # a patient client gets the 504
    assert r.status_code == 504

    requests.post(f"{url}/_sandbox/faults", json={"reset": 1.0}, timeout=5)
    with pytest.raises(requests.ConnectionError) as exc:
        requests.post(f"{url}/api/integration", json=body, timeout=5)
    assert "reset" in str(exc.value).lower()  # a real TCP RST, not a clean close

    requests.post(f"{url}/_sandbox/faults", json={"latency_ms": 150}, timeout=5)
    r = requests.post(f"{url}/api/integration", json=body, timeout=5)
    assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.15
