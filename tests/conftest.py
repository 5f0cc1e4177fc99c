"""Fixtures shared by every test: the local stack's services, started once per session on free ports.

Under pytest-xdist (``make test``) every worker is its own session: it starts its own Azurite and emulators
on free ports, and ``--dist loadfile`` keeps each test file on one worker, so a module's private stack
starts once.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "devstack.testing",
    "devstack.webpubsub.testing",
    "devstack.notificationhubs.testing",
]

#: Scheduling order under xdist: files that start a whole private stack and wait on it first (the longest),
#: then the other wire tests, then the quick unit tests that fill the gaps at the end.
_MARKER_ORDER = ("e2e", "integration")


def _weight(item: pytest.Item) -> int:
    for rank, marker in enumerate(_MARKER_ORDER):
        if item.get_closest_marker(marker) is not None:
            return rank
    return len(_MARKER_ORDER)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist workers, order files longest-first (a stable sort: files and tests keep their order)."""
    if not hasattr(config, "workerinput"):
        return  # a serial run keeps pytest's order
    file_weight: dict[str, int] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        file_weight[path] = min(file_weight.get(path, len(_MARKER_ORDER)), _weight(item))
    items.sort(key=lambda item: file_weight[item.nodeid.split("::", 1)[0]])
