"""Run the sandbox ad platform (a fake with a simulated audience) as a service.

    python -m faceloop.connectors.sandbox_platform --scenario examples/scenarios/smooth.yaml \\
        --port 8765 --state .faceloop/sandbox.db
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceloop.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faceloop.connectors.sandbox_platform",
        description="Serve the sandbox ad platform: a fake ad platform with a simulated "
        "audience, for offline and reproducible campaigns.",
    )
    parser.add_argument("--scenario", type=Path, required=True, help="scenario YAML file")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8765, help="port (default: %(default)s)")
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="SQLite file that keeps campaigns across restarts (default: in memory)",
    )
    parser.add_argument(
        "--audience-sees",
        choices=("declared", "measured"),
        default=None,
        help="what the simulated audience reacts to: the ad's declared face parameters, or "
        "those measured in its image (default: the scenario's audience_sees)",
    )
    parser.add_argument(
        "--assets",
        default=None,
        help="asset store the ads' images are read from (needed in measured mode): a folder, "
        "or s3://bucket/prefix with FACELOOP_S3__* for its endpoint and keys",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="FAKE faults for chaos runs: share of requests answered with a timeout after "
        "commit, a 500 after commit or a 503 (default: %(default)s, off)",
    )
    parser.add_argument(
        "--fault-seed", type=int, default=0, help="seed of the fault draws (default: %(default)s)"
    )
    parser.add_argument(
        "--fault-hold",
        type=float,
        default=None,
        help="seconds a timed-out answer is held (default: 35, past the connector's 30 s)",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fault_rate < 1.0:
        parser.error(f"--fault-rate must be in [0, 1), got {args.fault_rate}")

    # Imported after parsing so --help stays fast.
    from faceloop.connectors.sandbox_platform.app import serve

    try:
        serve(
            args.scenario,
            args.host,
            args.port,
            args.state,
            log_level=args.log_level,
            assets=args.assets,
            audience_sees=args.audience_sees,
            fault_rate=args.fault_rate,
            fault_seed=args.fault_seed,
            fault_hold_seconds=args.fault_hold,
        )
    except InputError as err:
        print(f"sandbox platform: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
