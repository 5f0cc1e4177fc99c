"""Timer triggers: fire functions on NCRONTAB / TimeSpan schedules (UTC), with ``runOnStartup``.

No schedule status is persisted (``useMonitor`` only decides whether ``ScheduleStatus`` is sent), so
``past_due`` is only True when an occurrence fires noticeably late (more than a second after its scheduled
time, e.g. because the previous run overran). The function gets the TimerInfo JSON the host sends
(``{"Schedule":{"AdjustForDST":true},"ScheduleStatus":...,"IsPastDue":...}``); ``ScheduleStatus`` is null when
``useMonitor`` is false, as in Azure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from devstack.functions_host import function_rpc as protos
from devstack.functions_host.indexing import IndexedFunction
from devstack.functions_host.invocation_log import reason_timer
from devstack.functions_host.invoker import InvocationFailed, Invoker
from devstack.functions_host.ncrontab import parse_schedule
from devstack.functions_host.typed_data import newtonsoft_json

logger = logging.getLogger(__name__)

PAST_DUE_TOLERANCE = timedelta(seconds=1)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _flag(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


class TimerListener:
    """Runs one timer-triggered function on its schedule until :meth:`stop`."""

    def __init__(self, function: IndexedFunction, invoker: Invoker) -> None:
        self.function = function
        self.schedule = parse_schedule(str(function.trigger["schedule"]))
        self.run_on_startup = _flag(function.trigger.get("runOnStartup"), False)
        self.use_monitor = _flag(function.trigger.get("useMonitor"), True)
        self._invoker = invoker
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the schedule loop."""
        self._task = asyncio.create_task(self._run(), name=f"timer-{self.function.name}")

    async def stop(self) -> None:
        """Stop firing (a running invocation of an async function is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        last: datetime | None = None
        if self.run_on_startup:
            now = datetime.now(UTC)
            await self._fire(now, now, last)
            last = now
        next_due = self.schedule.next_after(datetime.now(UTC))
        while True:
            delay = (next_due - datetime.now(UTC)).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            fired_at = datetime.now(UTC)
            following = self.schedule.next_after(max(fired_at, next_due))
            await self._fire(fired_at, next_due, last, following)
            last = next_due
            next_due = self.schedule.next_after(max(datetime.now(UTC) - PAST_DUE_TOLERANCE, next_due))

    async def _fire(
        self,
        fired_at: datetime,
        scheduled: datetime,
        last: datetime | None,
        following: datetime | None = None,
    ) -> None:
        status = {
            "Last": _iso(last) if last else None,
            "Next": _iso(following or self.schedule.next_after(fired_at)),
            "LastUpdated": _iso(fired_at),
        }
        timer_info = {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": status if self.use_monitor else None,
            "IsPastDue": fired_at - scheduled > PAST_DUE_TOLERANCE,
        }
        # A failing timer function is logged by the invoker and not retried.
        with contextlib.suppress(InvocationFailed):
            await self._invoker.invoke(
                self.function,
                protos.TypedData(json=newtonsoft_json(timer_info)),
                reason_timer(_iso(fired_at)),
            )
