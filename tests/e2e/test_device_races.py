"""Through the local host: concurrent register / delete / re-register of one installation always ends
consistent (ownership record, per-user index and the Notification Hubs installation agree), and a device
whose deletion won receives no push afterwards.

Each round fires its requests at the same moment from separate threads (a barrier), then reads the three
places the state lives in and pushes to every user involved straight through Notification Hubs (the tag
the notifier uses), so that the push sink shows which installations a push would reach.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from devstack.demo import DemoTarget, pushed_notification_id
from devstack.stack import HUB, RunningStack
from notify.push_templates import notification_tags
from shared.notification_hubs import NotificationHubsClient
from shared.retry import RetryPolicy
from shared.user_keys import user_key, user_tag

pytestmark = pytest.mark.e2e

ROUNDS = 200  # in all, spread over LANES installations that race at the same time
LANES = 10
TIMEOUT = 30.0


@dataclass
class Lane:
    """One installation raced by one user (``owner``) and, in shared-phone rounds, a second user."""

    installation_id: str
    owner: str
    other: str
    channels: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def http() -> Iterator[Callable[[], requests.Session]]:
    """One requests Session per thread (a Session is not meant to be shared between threads)."""
    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            with lock:
                sessions.append(local.session)
        return local.session  # type: ignore[no-any-return]

    yield session
    for each in sessions:
        each.close()


class Devices:
    """The device API as a client calls it, and the three places the outcome is recorded in."""

    def __init__(self, target: DemoTarget, stack: RunningStack, http: Callable[[], requests.Session]) -> None:
        self._target = target
        self._stack = stack
        self._http = http
        self.table: TableClient = target.table("DEVICES_TABLE")
        self.nh = NotificationHubsClient(
            stack.notification_hubs.connection_string, HUB, retry=RetryPolicy(attempts=3, base_delay=0.05)
        )

    def put(self, user: str, installation_id: str, channel: str) -> int:
        response = self._http().put(
            f"{self._target.functions_url}/api/devices/{installation_id}",
            headers={"Authorization": "Bearer " + self._target.token(user)},
            json={"platform": "fcmv1", "pushChannel": channel},
            timeout=TIMEOUT,
        )
        assert response.status_code in (200, 403), (response.status_code, response.text)
        if response.status_code == 403:
            assert response.json()["error"]["code"] == "forbidden"
        return response.status_code

    def delete(self, user: str, installation_id: str) -> int:
        response = self._http().delete(
            f"{self._target.functions_url}/api/devices/{installation_id}",
            headers={"Authorization": "Bearer " + self._target.token(user)},
            timeout=TIMEOUT,
        )
        assert response.status_code in (204, 403), (response.status_code, response.text)
        return response.status_code

    def owner_key(self, installation_id: str) -> str | None:
        try:
            record = self.table.get_entity(f"installation:{installation_id}", "")
        except ResourceNotFoundError:
            return None
        owner = record.get("owner")
        return owner if isinstance(owner, str) and owner else None

    def indexed(self, user: str, installation_id: str) -> bool:
        try:
            self.table.get_entity(f"user:{user_key(user)}", installation_id)
        except ResourceNotFoundError:
            return False
        return True

    def installation(self, installation_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._stack.notification_hubs.installation(HUB, installation_id)
        return found

    def push_reaches(self, user: str, installation_id: str) -> int:
        """Push to the user's tag as the notifier does; how many pushes reached the installation."""
        marker = "race-" + uuid.uuid4().hex
        properties = {"notificationId": marker, "title": "t", "body": "b", "type": "race", "data": "{}"}
        self.nh.send_template(properties, notification_tags(user_tag(user)))
        pushes = self._stack.notification_hubs.pushes(HUB, installation_id=installation_id)
        return sum(1 for push in pushes if pushed_notification_id(push) == marker)


def consistent_state(devices: Devices, lane: Lane) -> str | None:
    """Check that record, index and installation agree; return the owner's user id (None when free)."""
    installation_id = lane.installation_id
    owner_key = devices.owner_key(installation_id)
    installation = devices.installation(installation_id)
    users = {user_key(lane.owner): lane.owner, user_key(lane.other): lane.other}
    indexed = {key for key, user in users.items() if devices.indexed(user, installation_id)}
    if owner_key is None:
        assert installation is None, f"{installation_id}: no owner, but NH still has {installation}"
        assert not indexed, f"{installation_id}: no owner, but indexed for {indexed}"
        return None
    assert owner_key in users, owner_key
    assert installation is not None, f"{installation_id}: owned by {owner_key}, but NH has no installation"
    assert installation["tags"] == [f"user:{owner_key}"], (installation_id, owner_key, installation["tags"])
    assert installation["pushChannel"] in lane.channels
    assert indexed == {owner_key}, (installation_id, owner_key, indexed)
    return users[owner_key]


def race(*calls: Callable[[], int]) -> list[int]:
    """Run the calls at the same moment, each in its own thread; their answers in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], int]) -> int:
        barrier.wait(timeout=TIMEOUT)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def owner_registered(devices: Devices, lane: Lane, channel: str) -> None:
    """Start a round from the owner holding the installation (the other user deletes it first if needed)."""
    lane.channels.add(channel)
    if consistent_state(devices, lane) == lane.other:
        assert devices.delete(lane.other, lane.installation_id) == 204
    assert devices.put(lane.owner, lane.installation_id, channel) == 200


def same_user_round(devices: Devices, lane: Lane, number: int) -> str:
    """The owner re-registers and signs out at once (and, every other round, registers a second time)."""
    first, second = f"fcm-token-{number}-a-" + "x" * 24, f"fcm-token-{number}-b-" + "x" * 24
    lane.channels |= {first, second}
    owner_registered(devices, lane, f"fcm-start-{number}-" + "w" * 24)
    calls = [
        lambda: devices.put(lane.owner, lane.installation_id, first),
        lambda: devices.delete(lane.owner, lane.installation_id),
    ]
    if number // 2 % 2:
        calls.append(lambda: devices.put(lane.owner, lane.installation_id, second))
    answers = race(*calls)
    assert answers[1] == 204 and all(a == 200 for a in answers[::2]), answers
    owner = consistent_state(devices, lane)
    assert owner in (lane.owner, None)
    reached = devices.push_reaches(lane.owner, lane.installation_id)
    assert reached == (1 if owner == lane.owner else 0), (lane.installation_id, owner, reached)
    return "same user: registered" if owner else "same user: deleted"


def shared_phone_round(devices: Devices, lane: Lane, number: int) -> str:
    """The owner re-registers then signs out while another user registers the same installation (racing
    the re-registration in some rounds, the sign-out in the others)."""
    owner_channel, other_channel = f"fcm-own-{number}-" + "y" * 24, f"fcm-other-{number}-" + "z" * 24
    lane.channels |= {owner_channel, other_channel}
    owner_registered(devices, lane, owner_channel)
    reregistered = threading.Event()
    race_the_sign_out = number // 2 % 2 == 1

    def owner_signs_out() -> int:
        again = devices.put(lane.owner, lane.installation_id, owner_channel)
        reregistered.set()
        gone = devices.delete(lane.owner, lane.installation_id)
        return again * 1000 + gone

    def other_registers() -> int:
        if race_the_sign_out:
            reregistered.wait(timeout=TIMEOUT)
        return devices.put(lane.other, lane.installation_id, other_channel)

    owner_answers, other_answer = race(owner_signs_out, other_registers)
    assert owner_answers == 200 * 1000 + 204, owner_answers
    owner = consistent_state(devices, lane)
    assert owner == (lane.other if other_answer == 200 else None), (lane.installation_id, other_answer, owner)
    assert devices.push_reaches(lane.owner, lane.installation_id) == 0
    assert devices.push_reaches(lane.other, lane.installation_id) == (1 if owner == lane.other else 0)
    return "shared phone: taken over" if owner else "shared phone: refused"


def test_concurrent_register_and_delete_rounds_end_consistent(
    e2e_stack: RunningStack, e2e_target: DemoTarget, http: Callable[[], requests.Session]
) -> None:
    devices = Devices(e2e_target, e2e_stack, http)
    run = uuid.uuid4().hex[:8]
    lanes = [Lane(f"race-{run}-{i}", f"race-owner-{run}-{i}", f"race-other-{run}-{i}") for i in range(LANES)]
    outcomes: list[str] = []

    def drive(lane: Lane) -> None:
        for number in range(ROUNDS // LANES):
            play = shared_phone_round if number % 2 else same_user_round
            outcomes.append(play(devices, lane, number))

    try:
        with ThreadPoolExecutor(max_workers=LANES) as pool:
            for future in [pool.submit(drive, lane) for lane in lanes]:
                future.result()
    finally:
        devices.nh.close()
        devices.table.close()
    assert len(outcomes) == ROUNDS
    counts = Counter(outcomes)
    print("device race outcomes:", dict(counts))
    # Both orders won some same-user rounds, so the requests really raced.
    assert counts["same user: registered"] and counts["same user: deleted"], counts
