"""The exporters shared.observability installs, each in a fresh interpreter (they set process-wide
OpenTelemetry providers, which a test process must keep to itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

CONSOLE = """
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from notify.telemetry import DeliveryTelemetry
from shared.observability import configure_exporters
from shared.settings import TelemetrySettings

assert configure_exporters(TelemetrySettings(exporter="console")) == "console"
assert configure_exporters(TelemetrySettings(exporter="none")) == "console"  # once per process
telemetry = DeliveryTelemetry()
with telemetry.span("notify deliver", SpanKind.CONSUMER, "n-1", "alice"):
    telemetry.outcome("push", "pushed")
trace.get_tracer_provider().force_flush()
"""

AZURE_MONITOR = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from shared.observability import configure_exporters
from shared.settings import TelemetrySettings

settings = TelemetrySettings(
    applicationinsights_connection_string=(
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
    ),
    applicationinsights_client_id="11111111-1111-1111-1111-111111111111",
    applicationinsights_entra=True,
)
assert configure_exporters(settings) == "azure_monitor"
assert isinstance(trace.get_tracer_provider(), TracerProvider)
print("configured")
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
             "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "1"},
    )


def test_console_exporter_prints_spans_without_the_user_id() -> None:
    done = run(CONSOLE)
    assert done.returncode == 0, done.stderr
    span, end = json.JSONDecoder().raw_decode(done.stdout)  # the span; the metrics follow at exit
    assert span["name"] == "notify deliver" and span["kind"] == "SpanKind.CONSUMER"
    assert span["attributes"]["notify.notification_id"] == "n-1"
    assert "alice" not in done.stdout and span["resource"]["attributes"]["service.name"] == "azure-notify"
    assert "notify.delivery.outcomes" in done.stdout[end:]


def test_azure_monitor_is_configured_with_the_managed_identity() -> None:
    done = run(AZURE_MONITOR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("configured")
