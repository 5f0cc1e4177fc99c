"""Where OpenTelemetry traces and metrics go: configured once per process from ``TELEMETRY_EXPORTER``.

* ``azure_monitor`` (what ``auto`` picks when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, as in Azure):
  the Azure Monitor distro (``azure-monitor-opentelemetry``) sends traces and metrics to Application
  Insights. With ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING=ClientId=<id>;Authorization=AAD`` (the Bicep
  sets it; the component has local auth disabled) it ingests with that managed identity. Logs stay with the
  Functions host, which already forwards them (``disable_logging``), so no line is stored twice; of the
  distro's automatic instrumentations only the Azure SDK one is on (storage calls become dependencies).
  The worker's own switch ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` must stay unset: it configures
  the distro a second time, without the credential.
* ``otlp`` (``auto`` with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set): OTLP over HTTP/protobuf to
  ``<endpoint>/v1/traces`` and ``<endpoint>/v1/metrics`` (a local collector, Jaeger, Aspire dashboard...).
* ``console``: spans and metrics printed as JSON on stdout (the ``make dev`` log).
* ``none`` (``auto`` with neither): nothing; the OpenTelemetry API calls are no-ops.

Exporters send in the background (spans batched every few seconds, metrics every minute): no request is
added to a delivery.
"""

from __future__ import annotations

import logging
import threading

from shared.settings import TelemetrySettings

logger = logging.getLogger(__name__)

SERVICE_NAME = "azure-notify"
METRIC_EXPORT_MILLIS = 60_000
#: The distro's automatic instrumentations (its README); only azure_sdk stays on.
_DISTRO_INSTRUMENTATIONS = (
    "azure_sdk", "django", "fastapi", "flask", "httpx", "psycopg2", "requests", "urllib", "urllib3"
)
_configured: str | None = None
_lock = threading.Lock()


def configure_exporters(settings: TelemetrySettings) -> str:
    """Install the process-wide providers the settings ask for (once); return the exporter in use."""
    global _configured
    with _lock:
        if _configured is not None:
            return _configured
        exporter = settings.effective_exporter
        if exporter == "azure_monitor":
            _azure_monitor(settings)
        elif exporter in ("otlp", "console"):
            _sdk(settings, exporter)
        _configured = exporter
        logger.info("telemetry exporter: %s", exporter)
        return exporter


def _azure_monitor(settings: TelemetrySettings) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    credential = None
    if settings.applicationinsights_entra:
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        client_id = settings.applicationinsights_client_id
        credential = ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()
    configure_azure_monitor(
        connection_string=settings.applicationinsights_connection_string,
        credential=credential,
        disable_logging=True,
        instrumentation_options={name: {"enabled": name == "azure_sdk"} for name in _DISTRO_INSTRUMENTATIONS},
    )


def _sdk(settings: TelemetrySettings, exporter: str) -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    span_exporter: SpanExporter
    metric_exporter: MetricExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=f"{settings.otlp_endpoint}/v1/traces")
        metric_exporter = OTLPMetricExporter(endpoint=f"{settings.otlp_endpoint}/v1/metrics")
    else:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        span_exporter = ConsoleSpanExporter()
        metric_exporter = ConsoleMetricExporter()
    resource = Resource.create({"service.name": SERVICE_NAME})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=METRIC_EXPORT_MILLIS)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
