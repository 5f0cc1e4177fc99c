"""Process-wide objects are built once even when many threads ask for them at once (pure logic)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.once import process_wide


def test_concurrent_first_calls_build_once_and_share_the_object() -> None:
    builds: list[object] = []
    start = threading.Barrier(24)

    @process_wide
    def notifier() -> object:
        time.sleep(0.05)  # a slow build (clients, table checks): the window every other thread arrives in
        built = object()
        builds.append(built)
        return built

    def first_call() -> object:
        start.wait()
        return notifier()

    with ThreadPoolExecutor(24) as pool:  # a queue batch's invocations, starting together
        results = list(pool.map(lambda _: first_call(), range(24)))
    assert len(builds) == 1
    assert all(result is builds[0] for result in results)


def test_each_arguments_are_built_once_and_builders_may_call_each_other() -> None:
    calls: list[str] = []

    @process_wide
    def settings() -> str:
        calls.append("settings")
        return "s"

    @process_wide
    def client(name: str, binary: bool = False) -> tuple[str, str, bool]:
        calls.append(name)
        return settings(), name, binary

    assert client("q") == ("s", "q", False) and client("q") is client("q")
    assert client("q", binary=True) == ("s", "q", True)
    assert client("r") == ("s", "r", False)
    assert calls == ["q", "settings", "q", "r"]


def test_a_failed_build_is_not_kept() -> None:
    attempts: list[int] = []

    @process_wide
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("storage not reachable yet")
        return len(attempts)

    with pytest.raises(RuntimeError):
        flaky()
    assert flaky() == 2 and flaky() == 2
