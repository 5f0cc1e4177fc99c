"""The recovery pass: re-drive deliveries a crash left stuck, without waiting for the queue to give them back.

Why it exists: the queue trigger receives each message with a ten-minute visibility (the Storage Queues
extension's fixed receive lease, renewed while the function runs). When an instance dies, the messages it
had received stay invisible for the rest of that lease, so the queue alone would deliver them up to ten
minutes late. Every delivery row instead carries ``recoverAt`` (:func:`notify.delivery_machine.recovery_due`):
the moment it is stuck if nothing has changed it by then, a claim lease after a send was claimed, after an
ack deadline or after a scheduled retry. This pass, a timer (``RECOVERY_SCHEDULE``, every 30 s by default),
reads the rows whose moment has come and feeds each a ``Recovered`` event through the notifier; the state
machine decides what is still to do, under a fresh claim, so a row is sent at most once per channel however
many passes, redeliveries or re-checks meet it.

Bound: a notification an instance had claimed when it died is sent again at most ``CLAIM_LEASE_SECONDS`` +
one schedule interval later (60 s + 30 s by default). A message the instance had received but not started
yet has no row and comes back with the receive lease only (see the README's delivery guarantees). The
bound holds while one pass's scan covers the table: a pass reads at most ``RECOVERY_SCAN_PAGES`` pages
and the next resumes where it stopped, so on a large table the bound grows by the passes one round takes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from notify.deliveries import DeliveryStore
from notify.notifier import Notifier
from shared.errors import NotifyError

logger = logging.getLogger(__name__)

#: Rows re-driven per pass at most; the rest wait for the next pass (keeps one run well within the schedule).
BATCH_LIMIT = 100


@dataclass(frozen=True)
class RecoveryReport:
    """What one pass did."""

    due: int
    recovered: int
    failed: int


class RecoveryPass:
    """Finds the rows past their ``recoverAt`` moment and re-drives each once."""

    def __init__(
        self,
        deliveries: DeliveryStore,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
        limit: int = BATCH_LIMIT,
    ) -> None:
        self._deliveries = deliveries
        self._notifier = notifier
        self._clock = clock
        self._limit = limit
        self._resume: Any = None  # where the scan stopped last time (a large table takes several passes)

    def run(self) -> RecoveryReport:
        """Re-drive every row due now (up to the limit). Raises TransientError when the query fails."""
        due, self._resume = self._deliveries.due_for_recovery(float(self._clock()), self._limit, self._resume)
        recovered = failed = 0
        for record in due:
            try:
                self._notifier.recover(record)
                recovered += 1
            except NotifyError as exc:  # one row failing must not stop the pass: the next pass retries it
                failed += 1
                logger.warning("recovery of notification %s failed: %s", record.notification_id, exc.message)
        if due:
            logger.info("recovery pass: %d due, %d re-driven, %d failed", len(due), recovered, failed)
        return RecoveryReport(len(due), recovered, failed)
