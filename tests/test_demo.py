"""`faceloop demo` as a user runs it: a report at the end, and nothing left running, also
after Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faceloop.workflows.stack import free_port

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELOOP_")}
    env.update(
        FACELOOP_HOME=str(home),
        FACELOOP_TEMPORAL_PORT=str(free_port()),
        FACELOOP_SANDBOX_PORT=str(free_port()),
    )
    return env


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention text (the test's own data dir)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(f"{pid}: {cmd}")
    return found


def test_demo_writes_the_report_and_stops_everything(tmp_path: Path) -> None:
    # a data dir with a space and non-ASCII letters: asset URIs quote them
    home, out = tmp_path / "data dir Grüße", tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "faceloop.cli",
            "demo",
            "--rounds",
            "2",
            "--variants",
            "3",
            "--out",
            str(out),
        ],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "round 2/2 done" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert len(report["rounds"]) == 2
    for variant in report["rounds"][0]["variants"]:
        assert {"asset_id", "params", "decision", "impressions", "clicks", "conversions"} <= set(
            variant
        )
    assert report["winner"]["params"]
    assert (out / "report.html").exists()
    assert (home / "temporal.db").exists() and (home / "optuna.db").exists()
    assert _processes_mentioning(str(home)) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_stops_the_stack(tmp_path: Path, sig: signal.Signals) -> None:
    home = tmp_path / "home"
    proc, lines = _start_demo(home, tmp_path / "out")
    # the stack's own processes are running now
    assert len(_processes_mentioning(str(home))) >= 2
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest
    assert _processes_mentioning(str(home)) == []


def _as_at_a_terminal() -> None:
    """In the demo's child before exec: SIGINT delivered and handled by default, as at a
    terminal. An ignored or blocked signal is inherited across exec, and in two full
    suite runs (never alone) the demo did not see the test's Ctrl-C and ran to its end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _start_demo(home: Path, out: Path) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceloop.cli", "demo", "--out", str(out)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_as_at_a_terminal,
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        lines.append(line)
        if "submitted" in line or time.monotonic() > deadline:
            break
    assert any("submitted" in line for line in lines), "".join(lines)
    return proc, lines


def test_sigkill_of_the_demo_leaves_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, _ = _start_demo(home, tmp_path / "out")
    assert len(_processes_mentioning(str(home))) >= 2
    proc.kill()  # no handler runs: the children must die with their parent
    proc.wait(30)
    deadline = time.monotonic() + 15
    while _processes_mentioning(str(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(home)) == []


def test_a_second_stack_on_the_same_data_dir_refuses(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, _ = _start_demo(home, tmp_path / "out")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "faceloop.cli", "up"],
            env=_env(home),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"the data dir {home} is in use by pid {proc.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert _processes_mentioning(str(home)) == []
