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


def log_executed(function_name: str, succeeded: bool, invocation_id: str, duration_ms: float) -> None:
    """Log the end of an invocation with its outcome and duration."""
    logger.log(
        logging.INFO if succeeded else logging.ERROR,
        "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
        function_name,
        "Succeeded" if succeeded else "Failed",
        invocation_id,
        round(duration_ms),
    )
