"""Our retry loop: a bounded budget (attempts and total time) that honours Retry-After.

Only :class:`~shared.errors.TransientError` is retried; wrappers around SDKs translate 429, 5xx and
timeouts into it, so validation errors (4xx) are never retried. Every call is retried in one layer only:
this loop for Notification Hubs (inside :class:`shared.notification_hubs.NotificationHubsClient`) and Web
PubSub (the notifier; the SDK's own retries are off), the Storage SDKs' capped policies for queues and
tables (:mod:`shared.clients`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.errors import TransientError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry: at most ``attempts`` calls within ``budget_seconds`` in total."""

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 5.0
    budget_seconds: float = 20.0

    def delay_for(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        backoff: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return backoff * (0.5 + random.random() / 2)


def call_with_retry[T](
    operation: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``operation`` until it succeeds, retrying TransientError within the policy's budget.

    Raises the last TransientError when the budget is spent, and any other error at once.
    """
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation()
        except TransientError as exc:
            delay = policy.delay_for(attempt, exc.retry_after)
            spent = clock() - started
            if attempt >= policy.attempts or spent + delay > policy.budget_seconds:
                logger.warning(
                    "%s failed after %d attempts in %.1f s: %s", what, attempt, spent, exc.message
                )
                raise
            logger.info(
                "%s failed transiently (attempt %d, status %s); retrying in %.2f s",
                what,
                attempt,
                exc.upstream_status,
                delay,
            )
            sleep(delay)
