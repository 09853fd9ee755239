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
