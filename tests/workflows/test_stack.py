"""The embedded stack's data-dir lock: one stack per FACELOOP_HOME, released on exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceloop.errors import StackError
from faceloop.workflows.stack import lock_home


def test_a_second_lock_on_the_same_data_dir_is_refused_then_released(tmp_path: Path) -> None:
    held = lock_home(tmp_path)
    with pytest.raises(StackError, match=r"is in use by pid \d+"):
        lock_home(tmp_path)
    held.close()
    lock_home(tmp_path).close()  # free again once the holder lets go


@pytest.mark.slow
async def test_temporals_http_api_refuses_a_cross_origin_post(tmp_path: Path) -> None:
    """A page in the user's browser can POST text/plain to 127.0.0.1 without a preflight;
    on Temporal's HTTP API that starts workflows and sends review votes. The embedded
    stack's API answers 403 to every request, while faceloop's gRPC client still works."""
    import httpx

    from faceloop.settings import Settings
    from faceloop.workflows.stack import embedded_stack

    settings = Settings(home=tmp_path, sandbox_url="http://127.0.0.1:9")  # no sandbox needed
    async with embedded_stack(settings, fresh_ports=True) as (stack, client):
        assert stack.temporal_http_port is not None
        async with httpx.AsyncClient() as http:
            res = await http.post(
                f"http://127.0.0.1:{stack.temporal_http_port}"
                "/api/v1/namespaces/default/workflows/cross-origin",
                headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
                content='{"workflowType": {"name": "X"}, "taskQueue": {"name": "q"}}',
            )
        assert res.status_code == 403, res.text
        started = [w.id async for w in client.list_workflows()]
        assert "cross-origin" not in started


@pytest.mark.slow
@pytest.mark.parametrize("sync", ["normal", "full"])
async def test_the_dev_servers_sqlite_runs_in_wal_with_the_chosen_sync(
    tmp_path: Path, sync: str
) -> None:
    """Each workflow task is a few commits in the dev server's SQLite: the stack asks for
    WAL (a commit appends, no rollback-journal fsyncs) and the synchronous mode of
    `temporal_sqlite_sync`. Read back from the server's own file and process arguments."""
    import sqlite3

    from faceloop.settings import Settings
    from faceloop.workflows.stack import embedded_stack

    settings = Settings(
        home=tmp_path,
        sandbox_url="http://127.0.0.1:9",
        temporal_sqlite_sync=sync,  # type: ignore[arg-type]
    )
    async with embedded_stack(settings, fresh_ports=True) as (stack, client):
        await client.count_workflows()  # the server answers: its schema is written
        db = sqlite3.connect(f"file:{tmp_path / 'temporal.db'}?mode=ro", uri=True)
        try:
            # journal_mode=wal is stored in the file's header, so a second reader sees it
            assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
        finally:
            db.close()
        argv = stack._temporal_argv
        assert argv is not None
        pragmas = [argv[i + 1] for i, a in enumerate(argv) if a == "--sqlite-pragma"]
        assert pragmas == ["journal_mode=wal", f"synchronous={sync}"]
