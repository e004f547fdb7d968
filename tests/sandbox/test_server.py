"""Running the sandbox: in process (running_sandbox), configuration, and as a process (main)."""

from __future__ import annotations

import json
import os
import smtplib
import stat
from email.message import EmailMessage
from pathlib import Path

import defusedxml.ElementTree as DET
import pytest
import requests

from sandbox.server import (
    DEFAULT_CONFIG_FILE,
    SandboxConfig,
    _config_from_args,
    _parser,
    config_from_mapping,
    load_config,
    main,
    running_sandbox,
)

NS = {"dc": "http://www.mic.gov.vn/dancu/1.0"}
IDENT = {"MaYeuCau": "R-1", "MaDVC": "1.001193", "MaTichHop": "TTHC-SYNC", "MaCanBo": "cb01"}


def test_all_simulators_in_process(tmp_path):
    cfg = SandboxConfig.for_tests(tmp_path, size=80)
    with running_sandbox(cfg) as sb:
        assert set(sb.urls) == {"igate", "population", "portal", "onegate"}
        assert set(sb.ports) == {"igate", "population", "portal", "smtp", "onegate"}
        assert all(p > 0 for p in sb.ports.values())
        for url in sb.urls.values():
            assert requests.get(f"{url}/_sandbox/state", timeout=5).status_code == 200

        doc = sb.state_document()
        assert doc["igate"]["sources"][0]["client_secret"] == sb.igate_sources[0]["client_secret"]
        assert doc["world"]["seed"] == 42 and doc["world"]["size"] == 80
        assert doc["portal"]["username"] == sb.portal_credentials["username"]
        assert doc["smtp"]["folder"] == str((tmp_path / "mail").resolve())

        # the population registry is the World's citizens
        citizen = sb.world.citizens[0]
        r = requests.post(
            doc["population"]["lookup_url"], json=dict(IDENT, SoDinhDanh=citizen.id_number), timeout=5
        )
        root = DET.fromstring(r.json()["message"].encode())
        assert root.findtext(".//dc:CongDan/dc:HoVaTen/dc:Ten", namespaces=NS) == citizen.ten
        assert doc["population"]["registry_size"] == len(sb.world.citizens)

        # the clock on igate moves the world every simulator shares
        before = sb.world.now
        requests.post(f"{sb.urls['igate']}/_sandbox/clock", json={"hours": 3}, timeout=5)
        assert (sb.world.now - before).total_seconds() == 3 * 3600

        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@example.invalid", "b@example.invalid", "hi"
        msg.set_content("x")
        with smtplib.SMTP("127.0.0.1", sb.ports["smtp"], timeout=5) as s:
            s.send_message(msg)
        assert len(sb.smtp.files()) == 1
    # stopped: the ports are closed
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sb.urls.get('portal', doc['portal']['url'])}/_sandbox/state", timeout=1)


def test_one_simulator_alone_needs_no_world(tmp_path):
    with running_sandbox(SandboxConfig.for_tests(tmp_path, simulators=("portal",))) as sb:
        assert sb.world is None and set(sb.ports) == {"portal"}


def test_repository_config_file():
    assert DEFAULT_CONFIG_FILE.exists()
    cfg = load_config()
    assert cfg.ports == {"igate": 8701, "population": 8702, "portal": 8703, "smtp": 8725, "onegate": 8704}
    assert (cfg.seed, cfg.size, cfg.token_seconds) == (42, 400, 300.0)
    assert set(cfg.simulators) == {"igate", "population", "portal", "smtp", "onegate", "sqldb", "filedrop"}
    assert cfg.faults == {}  # default profile: no faults


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown keys"):
        config_from_mapping({"sed": 1})
    with pytest.raises(ValueError, match="unknown fault profile keys"):
        config_from_mapping({"portal": {"faults": {"comit_lost": 0.1}}})
    with pytest.raises(ValueError, match="unknown simulators"):
        config_from_mapping({"simulators": ["igate", "soap"]})
    cfg = config_from_mapping({"portal": {"faults": {"commit_lost": 0.1}}, "ports": {"igate": 0}})
    assert cfg.faults["portal"].commit_lost == 0.1 and cfg.ports["igate"] == 0


def test_command_line_overrides(tmp_path):
    args = _parser().parse_args(
        [
            "run",
            "--seed", "7",
            "--only", "igate,portal",
            "--igate-port", "0",
            "--token-seconds", "5",
            "--fault", 'portal={"commit_lost": 0.5, "timeout_seconds": 1}',
            "--state-dir", str(tmp_path),
        ]
    )  # fmt: skip
    cfg = _config_from_args(args)
    assert (cfg.seed, cfg.simulators, cfg.ports["igate"], cfg.token_seconds) == (
        7,
        ("igate", "portal"),
        0,
        5.0,
    )
    assert cfg.faults["portal"].commit_lost == 0.5 and cfg.state_dir == tmp_path
    with pytest.raises(ValueError):
        _config_from_args(_parser().parse_args(["run", "--fault", "smtp={}"]))


def test_start_status_stop_as_a_process(tmp_path, capsys):
    state_dir = tmp_path / "state"
    argv = [
        "--state-dir", str(state_dir),
        "--size", "60",
        "--smtp-folder", str(tmp_path / "mail"),
        *[x for name in ("igate", "population", "portal", "smtp", "onegate")
          for x in (f"--{name}-port", "0")],
    ]  # fmt: skip
    assert main(["start", *argv, "--wait", "60"]) == 0
    try:
        started = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        doc = json.loads((state_dir / "state.json").read_text(encoding="utf-8"))
        assert stat.S_IMODE(os.stat(state_dir / "state.json").st_mode) == 0o600
        assert doc["pid"] == started["pid"] == int((state_dir / "sandbox.pid").read_text())
        assert set(doc["urls"]) == {"igate", "population", "portal", "onegate"}
        assert doc["sources"][0]["port"] == doc["ports"]["igate"] and doc["sources"][0]["dialect"] == "igate"
        assert doc["portal_credentials"]["username"] == doc["portal"]["username"]

        # the documented credentials work
        src = doc["igate"]["sources"][0]
        tok = requests.post(
            doc["igate"]["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": src["client_id"],
                "client_secret": src["client_secret"],
            },
            timeout=5,
        ).json()["access_token"]
        page = requests.get(
            doc["igate"]["dossiers_url"],
            params={"updatedFrom": "2026-09-01T00:00:00+07:00", "size": 5},
            headers={"Authorization": f"Bearer {tok}"},
            timeout=5,
        ).json()
        assert len(page["content"]) == 5
        auth = requests.post(
            doc["portal"]["auth_url"],
            json={"username": doc["portal"]["username"], "password": doc["portal"]["password"]},
            timeout=5,
        ).json()
        assert auth["error_code"] == 0
        lookup = requests.post(
            doc["population"]["lookup_url"], json=dict(IDENT, SoDinhDanh="036185000123"), timeout=5
        )
        assert lookup.json()["error_code"] == "0"

        assert main(["status", "--state-dir", str(state_dir)]) == 0
        assert main(["start", *argv]) == 1  # already running
    finally:
        assert main(["stop", "--state-dir", str(state_dir)]) == 0
    assert not (state_dir / "sandbox.pid").exists() and not (state_dir / "state.json").exists()
    assert main(["status", "--state-dir", str(state_dir)]) == 3
    assert main(["stop", "--state-dir", str(state_dir)]) == 0  # nothing to stop is fine
    # the server's log carries no query strings and no personal data
    log = Path(state_dir / "sandbox.log").read_text(encoding="utf-8")
    assert "updatedFrom" not in log and "036185000123" not in log and "/api/v1/dossiers" not in log
