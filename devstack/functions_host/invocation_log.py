"""The host's per-invocation log lines: ``Executing 'Functions.<name>' ...`` and ``Executed ...``."""

from __future__ import annotations

import logging

logger = logging.getLogger("devstack.functions_host.invocations")

REASON_HTTP = "This function was programmatically called via the host APIs."


def reason_queue(queue_name: str) -> str:
    """The reason the host gives for a queue-triggered invocation."""
    return f"New queue message detected on '{queue_name}'."


def reason_timer(fired_at_iso: str) -> str:
    """The reason the host gives for a timer-triggered invocation."""
    return f"Timer fired at {fired_at_iso}"


def log_executing(function_name: str, reason: str, invocation_id: str) -> None:
    """Log the start of an invocation."""
    logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function_name, reason, invocation_id)


def log_executed(
    function_name: str,
    succeeded: bool,
    invocation_id: str,
    duration_ms: float,
    error: BaseException | None = None,
) -> None:
    """Log the end of an invocation with its outcome and duration (and the function's exception)."""
    if succeeded:
        logger.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            function_name,
            invocation_id,
            round(duration_ms),
        )
    else:
        logger.error(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
            function_name,
            invocation_id,
            round(duration_ms),
            exc_info=error,
        )
