"""What the app reports to OpenTelemetry: one trace per notification, and the delivery metrics.

**The trace.** The producer's ``notify enqueue`` span (PRODUCER) writes its W3C ``traceparent`` into the
queue message; the notifier continues that trace with ``notify deliver`` (CONSUMER), and every send is a
``notify send realtime`` / ``notify send push`` span (CLIENT) below it. The delivery row keeps the
traceparent of the ``deliver`` span, so the ack deadline (``notify deadline``) and the client's ack
(``notify ack``), which arrive without one, join the same trace. Each recorded transition of the delivery
is an event on the current span (its name, status and reason). Span attributes never carry the user id,
only its hash (:func:`shared.user_keys.user_hash`).

**The metrics** (instrument, unit, attributes):

====================================  ====  =====================================================
``notify.delivery.outcomes``          1     ``channel``, ``outcome`` (sent, acked, pushed, no_devices,
                                            failed, expired): what the outcome log line says
``notify.push.fallbacks``             1     ``reason``: offline, ack-deadline, realtime-failed
``notify.delivery.retries``           1     ``channel``: a send failed transiently; the message is retried
``notify.poisoned``                   1     ``queue``, ``reason``: invalid, retries-exhausted, webhook-gave-up
``notify.webhook.deliveries``         1     ``outcome``: delivered, retry, poisoned (one per event)
``notify.latency.enqueue_to_realtime``  ms  enqueue by the producer → in-app send recorded
``notify.latency.enqueue_to_push``    ms    enqueue by the producer → push recorded
``notify.latency.ack``                ms    in-app send → the client's ack
====================================  ====  =====================================================

Where the data goes is configured once per process by :mod:`shared.observability`; without it every call
here is a no-op of the OpenTelemetry API. Tests pass their own providers (in-memory exporters).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from notify.delivery_machine import Transition
from shared.observability import configure_exporters
from shared.once import process_wide
from shared.settings import get_settings
from shared.user_keys import user_hash

INSTRUMENTATION_NAME = "azure-notify"
_PROPAGATOR = TraceContextTextMapPropagator()


def context_from(traceparent: str | None) -> Any:
    """The OpenTelemetry context a W3C ``traceparent`` names (None: the current context)."""
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None when there is no valid (sampled or not) span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


class DeliveryTelemetry:
    """Spans and metrics of deliveries, from the given providers (default: the process-wide ones)."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION_NAME, meter_provider=meter_provider)
        self._outcomes = meter.create_counter(
            "notify.delivery.outcomes", unit="1", description="Delivery outcomes per channel"
        )
        self._fallbacks = meter.create_counter(
            "notify.push.fallbacks", unit="1", description="Pushes of auto notifications, by reason"
        )
        self._retries = meter.create_counter(
            "notify.delivery.retries", unit="1", description="Sends that failed transiently and are retried"
        )
        self._poisoned = meter.create_counter(
            "notify.poisoned", unit="1", description="Messages moved to a poison queue"
        )
        self._webhooks = meter.create_counter(
            "notify.webhook.deliveries", unit="1", description="Webhook event deliveries, by outcome"
        )
        self._to_realtime = meter.create_histogram(
            "notify.latency.enqueue_to_realtime", unit="ms", description="Enqueue to in-app send"
        )
        self._to_push = meter.create_histogram(
            "notify.latency.enqueue_to_push", unit="ms", description="Enqueue to push"
        )
        self._ack = meter.create_histogram(
            "notify.latency.ack", unit="ms", description="In-app send to the client's ack"
        )

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        kind: SpanKind,
        notification_id: str,
        user_id: str,
        traceparent: str | None = None,
        attributes: Mapping[str, str | int] | None = None,
    ) -> Iterator[Span]:
        """A current span for one notification; a child of ``traceparent`` when given."""
        attrs: dict[str, str | int] = {
            "notify.notification_id": notification_id,
            "notify.user_hash": user_hash(user_id),
            **(attributes or {}),
        }
        with self._tracer.start_as_current_span(
            name, context=context_from(traceparent), kind=kind, attributes=attrs
        ) as span:
            yield span

    def transition(self, step: Transition, enqueued_at: float | None) -> None:
        """Record a transition that changed the delivery: a span event, and its metrics."""
        if step.recorded is None:
            return
        state = step.state
        fallback = step.details.get("fallback")
        if isinstance(fallback, str):
            self._fallbacks.add(1, {"reason": fallback})
        for entry in step.entries:
            trace.get_current_span().add_event(
                entry.name, {"notify.status": entry.status, "notify.reason": entry.reason}
            )
            if entry.name == "realtime-sent" and enqueued_at:
                self._to_realtime.record(_ms(state.realtime.sent_at - enqueued_at))
            elif entry.name == "push-sent" and enqueued_at:
                self._to_push.record(_ms(state.push.sent_at - enqueued_at))
            elif entry.name == "acked" and state.realtime.sent:
                self._ack.record(_ms(state.acked_at - state.realtime.sent_at))

    def outcome(self, channel: str, outcome: str) -> None:
        """Count an outcome (what the structured ``delivery`` log line reports)."""
        if outcome == "retry":
            self._retries.add(1, {"channel": channel})
        else:
            self._outcomes.add(1, {"channel": channel, "outcome": outcome})

    def poisoned(self, queue: str, reason: str) -> None:
        """Count a message moved to ``<queue>-poison``."""
        self._poisoned.add(1, {"queue": queue, "reason": reason})

    def webhook(self, outcome: str, events: int = 1) -> None:
        """Count webhook event deliveries (``delivered``, ``retry``, ``poisoned``)."""
        if events:
            self._webhooks.add(events, {"outcome": outcome})


def _ms(seconds: float) -> float:
    return max(0.0, seconds * 1000.0)


@process_wide
def get_telemetry() -> DeliveryTelemetry:
    """The process-wide telemetry, after the exporters the settings ask for are installed."""
    configure_exporters(get_settings().telemetry)
    return DeliveryTelemetry()
