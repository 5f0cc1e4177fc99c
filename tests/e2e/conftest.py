"""A private local stack per e2e test module (free ports, short ack timeout) and the demo's view of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.demo import DemoTarget, target_for_stack
from devstack.stack import RunningStack, StackPorts, running_stack

#: App settings the e2e stacks run with: a short ack timeout and queue polling interval (host.json says
#: 2 s) keep the push-fallback tests fast. The ack timeout leaves room for a loaded machine: an ack that
#: arrives after it is rightly too late (the push goes out), which would fail the "ack prevents push" step.
E2E_APP_ENV = {
    "ACK_TIMEOUT_SECONDS": "3",
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.200",
}


@pytest.fixture(scope="module")
def e2e_app_env() -> dict[str, str]:
    """The app settings (on top of local.settings) the module's host runs with; pass them to restarts."""
    return dict(E2E_APP_ENV)


@pytest.fixture(scope="module")
def e2e_stack() -> Iterator[RunningStack]:
    """Azurite, both emulators and the Functions host (real function_app.py) for this test module."""
    with running_stack(ports=StackPorts.free(), persist=False, app_env=E2E_APP_ENV) as stack:
        yield stack


@pytest.fixture(scope="module")
def e2e_target(e2e_stack: RunningStack) -> DemoTarget:
    """The demo's handle on the module's stack (host URL, storage, push sink, effective settings)."""
    return target_for_stack(e2e_stack, E2E_APP_ENV)
