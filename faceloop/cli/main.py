"""The `faceloop` app: built here, its commands live with their concern.

Each CLI module has `register(app, bench_app)`, which attaches its commands, its command
groups and its `faceloop bench` entries; `faceloop --help` lists commands in this order.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

import typer

from faceloop.agents import cli as agents_cli
from faceloop.cli import bench_loop, campaigns, connectors, db, governance, kpis, privacy, users
from faceloop.cli.console import group, print_error
from faceloop.errors import FaceloopError
from faceloop.generators import cli as generators_cli
from faceloop.guardrails import cli as guardrails_cli
from faceloop.optimization import cli as optimization_cli
from faceloop.playbooks import cli as playbooks_cli

app = typer.Typer(
    help="faceloop: run AI-face ad campaigns as a durable, governed closed loop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
bench_app = group(
    "Measure speed, memory and quality on this machine; results go to docs/benchmarks.md."
)
app.add_typer(bench_app, name="bench")

for register in (
    campaigns.register,
    generators_cli.register,
    guardrails_cli.register,
    agents_cli.register,
    optimization_cli.register,
    governance.register,
    kpis.register,
    connectors.register,
    bench_loop.register,
    playbooks_cli.register,
    privacy.register,
    users.register,
    db.register,
):
    register(app, bench_app)


def main() -> None:
    """The `faceloop` console script: the app, then an exit a Temporal client cannot crash.

    temporalio/sdk-python#300: the client's Tokio threads may take the GIL while the
    interpreter finalizes, which aborts the process (SIGABRT, exit 134) after the command
    has already printed its result or its one-line error. Once the Temporal bridge is
    loaded, the command ends the way finalization would up to that point (other threads
    joined, exit handlers run, output flushed) and then leaves without finalizing.
    """
    try:
        app()
        code: str | int | None = 0
    except SystemExit as exc:
        code = exc.code
    except FaceloopError as exc:
        # raised before a command's own handling, e.g. by invalid settings (FACELOOP_* or
        # Temporal's env config) read while the command starts: one line, not a traceback
        print_error(exc)
        code = 2
    if "temporalio.bridge.temporal_sdk_bridge" not in sys.modules:
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): Python prints it and exits 1
        print(code, file=sys.stderr)
        status = 1
    # what Py_FinalizeEx does before it marks the runtime as finalizing: stop executors'
    # workers and join every non-daemon thread, then run the atexit handlers
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
