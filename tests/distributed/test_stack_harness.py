"""The harness's own guarantees, without PostgreSQL or Redis: stubborn processes are killed with
their descendants, only marked processes are ever touched, unreachable servers are reported,
digit runs are masked in what gets printed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psutil
from stack import MARKER, Service, StackOptions, marked_processes, prerequisites_missing, scrub

# a process that ignores SIGTERM and leaves a grandchild in another session
STUBBORN = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(120)"])
    print("ready", flush=True)
    time.sleep(120)
    """
)


def test_stubborn_service_and_escaped_grandchild_are_killed(tmp_path):
    uid = "harness-" + os.urandom(4).hex()
    svc = Service("stubborn", [sys.executable, "-c", STUBBORN], tmp_path / "stubborn.log", uid)
    svc.start({**os.environ, MARKER: uid}, tmp_path)
    try:
        deadline = time.monotonic() + 20
        while "ready" not in svc.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        svc.snapshot()
        assert len(svc.members()) == 2  # itself and the grandchild that left its session
        svc.terminate()
        assert not svc.wait(time.monotonic() + 1.5), "SIGTERM is ignored: still running"
        svc.kill()
        assert svc.wait(time.monotonic() + 10)
        assert marked_processes(uid) == []
    finally:
        for p in marked_processes(uid):
            p.kill()


def test_unmarked_processes_are_never_counted(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        svc = Service("x", [sys.executable, "-c", "pass"], tmp_path / "x.log", "not-" + os.urandom(4).hex())
        svc.known.add(other.pid)  # e.g. a pid reused by someone else's process
        svc.proc = other  # even its "main" pid, if it lacks the marker
        assert svc.members() == []
        assert psutil.pid_exists(other.pid)
    finally:
        other.kill()
        other.wait()


def test_unreachable_servers_are_reported():
    why = prerequisites_missing(StackOptions(pg_port=1))
    assert why and "PostgreSQL" in why


def test_scrub_masks_id_numbers():
    assert (
        scrub("CCCD 040123456789 and CMND 123456789, run 42")
        == "CCCD ############ and CMND #########, run 42"
    )
