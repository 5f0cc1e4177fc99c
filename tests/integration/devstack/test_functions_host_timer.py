"""Timer triggers through the local Functions host (observed over HTTP)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.functions_host import IndexingError, start_functions_host
from tests.integration.devstack.functions_host_support import (  # noqa: F401 - fixture
    host_storage,
    records,
    sample_app_copy,
    sample_environ,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_every_second_schedule_fires_repeatedly(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    running = start_functions_host(sample_app_copy(tmp_path), environ=sample_environ(host_storage))
    try:
        ticks = wait_until(lambda: len(records(running.url, "timer")) >= 2 and records(running.url, "timer"))
    finally:
        running.stop()
    assert all(tick == {"past_due": False} for tick in ticks)


def test_run_on_startup_fires_immediately(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    app_dir = sample_app_copy(tmp_path)
    source = (app_dir / "function_app.py").read_text()
    # A schedule that will not come round during the test: only run_on_startup can fire it.
    source = source.replace(
        'schedule="*/1 * * * * *", run_on_startup=False', 'schedule="0 0 0 1 1 *", run_on_startup=True'
    )
    (app_dir / "function_app.py").write_text(source)
    running = start_functions_host(app_dir, environ=sample_environ(host_storage))
    try:
        assert wait_until(lambda: records(running.url, "timer")) == [{"past_due": False}]
    finally:
        running.stop()


def test_invalid_schedule_stops_the_host_at_startup(tmp_path: Path, host_storage: str) -> None:  # noqa: F811
    app_dir = sample_app_copy(tmp_path)
    source = (
        (app_dir / "function_app.py").read_text().replace('schedule="*/1 * * * * *"', 'schedule="* * * *"')
    )
    (app_dir / "function_app.py").write_text(source)
    with pytest.raises(IndexingError, match=r"function 'every_second': schedule '\* \* \* \*'"):
        start_functions_host(app_dir, environ=sample_environ(host_storage))
    assert "SAMPLE_QUEUE" not in os.environ
