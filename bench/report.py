"""Render a run: a plain-text table for the terminal, JSON under bench/results/, Markdown for the docs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.figures import BenchResult, OwnCpu, SystemFigures
from bench.request_table import cost_rows, price_lines
from bench.request_table import render_markdown as render_requests_markdown
from bench.request_table import render_text as render_requests_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_description() -> dict[str, Any]:
    """CPU model, core count, OS and Python of this machine."""
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _row(path: str, system: str, figures: SystemFigures) -> list[str]:
    lat = figures.latency
    return [
        path,
        system,
        f"{figures.throughput_per_s:.0f}",
        f"{lat.p50_ms:.1f}",
        f"{lat.p95_ms:.1f}",
        f"{lat.p99_ms:.1f}",
        f"{figures.process_cpu_ms_per_notification:.2f}",
        f"{figures.delivered}/{figures.expected}",
    ]


HOSTED_FLOOR = "guarantee floor (Functions host)"
BARE_FLOOR = "guarantee floor (bare process)"
TARGET_RATIOS = "notifier/hosted floor (targets)"
BARE_RATIOS = "notifier/bare floor (reference)"
HOST_SHARE = "hosted - bare floor (the host's share)"


def _ratio_row(path: str, label: str, throughput: float, p50: float, cpu: float) -> list[str]:
    return [path, label, f"{throughput:.2f}", f"{p50:.2f}", "", "", f"{cpu:.2f}", ""]


HEADERS = ["path", "system", "notif/s", "p50 ms", "p95 ms", "p99 ms", "CPU ms/notif", "delivered"]


def table_rows(result: BenchResult) -> list[list[str]]:
    """The rows of the main table per path: the four systems, the ratios to both guarantee floors (the
    hosted one is the targets' reference) and the host's CPU share (hosted minus bare floor)."""
    rows: list[list[str]] = []
    for path in result.paths:
        rows.append(_row(path.path, "notifier", path.notifier))
        rows.append(_row(path.path, HOSTED_FLOOR, path.hosted_floor))
        rows.append(_row(path.path, BARE_FLOOR, path.guarantee_floor))
        rows.append(_row(path.path, "presence floor", path.presence_floor))
        rows.append(_ratio_row(path.path, TARGET_RATIOS, path.throughput_ratio, path.p50_ratio,
                               path.cpu_ratio))
        bare = path.bare_floor_ratios()
        rows.append(_ratio_row(path.path, BARE_RATIOS, bare["throughput"], bare["p50"], bare["cpu"]))
        rows.append([path.path, HOST_SHARE, "", "", "", "", f"{path.host_cpu_ms:+.2f}", ""])
    return rows


def render_table(result: BenchResult, with_requests: bool = True) -> str:
    """The request table, a fixed-width table of the figures, own CPU and the target verdicts."""
    head = []
    if result.requests is not None and with_requests:
        head = [render_requests_text(result.requests), ""]
    if not result.paths:
        return "\n".join(head).rstrip()
    rows = [HEADERS, *table_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for cpu in result.own_cpu:
        lines.append(
            f"own CPU {cpu.path}: {cpu.own_ms:.3f} ms/notification in notify/+shared/ (profiled), "
            f"{cpu.unprofiled_total_ms:.2f} ms thread CPU of all code{_floor_cpu_text(cpu)}, "
            f"{cpu.http_requests_per_notification:.1f} HTTP requests/notification, {cpu.samples} samples"
        )
    for path, target in result.targets():
        verdict = "MET" if target.met else "MISSED"
        lines.append(f"{verdict:6}  {path:26} {target.name}: {target.measured:.2f} "
                     f"(limit {target.limit:.2f}; {target.rule})")
    return "\n".join(head + lines)


def _floor_cpu_text(cpu: OwnCpu) -> str:
    if cpu.floor_total_ms is None or cpu.floor_ratio is None:
        return ""
    return f" (guarantee floor's code {cpu.floor_total_ms:.2f} ms: {cpu.floor_ratio:.2f} x)"


def write_json(result: BenchResult, directory: Path = RESULTS_DIR) -> Path:
    """Write the run as ``bench-<timestamp>.json`` in ``directory``; return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = result.started_at.replace(":", "").replace("-", "")
    target = directory / f"bench-{stamp}.json"
    target.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return target


def render_markdown(result: BenchResult, history: str = "") -> str:
    """The Markdown summary for docs/PERFORMANCE.md: machine, command, table, targets, own CPU, notes."""
    machine = result.machine
    settings = ", ".join(f"{key}={value}" for key, value in result.settings.items())
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`python -m bench`); the JSON of each run is kept in `bench/results/`.",
        "",
        f"- Run: {result.started_at} UTC",
        f"- Command: `{result.command}`",
        f"- Machine: {machine.get('cpu_model')}, {machine.get('cpus')} CPUs, {machine.get('os')}, "
        f"Python {machine.get('python')}",
        f"- Settings: {settings}",
        "",
    ]
    if result.requests is not None:
        count = result.requests
        lines += ["## Requests per notification, counted at the wire", "",
                  f"{count.notifications_per_path} notifications per path and system, ack timeout "
                  f"{count.ack_timeout_s} s, counted in {count.seconds:.0f} s "
                  "(`python -m bench --requests`). Columns: calls per notification by service and "
                  "operation; `q get` counts messages received (one get per message at low load); idle "
                  "polls are excluded; `vs guarantee` is the difference in total from the guarantee floor "
                  "(counted as a bare process: in the Functions host it makes the same SDK calls); "
                  "`$/M notif` is USD per million notifications at the list prices below.", ""]
        lines += render_requests_markdown(count)
        lines += ["", "### Cost per million notifications (USD, usage beyond the included quotas)", ""]
        costs = cost_rows(count)
        lines += ["| " + " | ".join(costs[0]) + " |", "|" + "|".join("---" for _ in costs[0]) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in costs[1:]]
        lines += ["", "Prices (list prices, USD; `executions` = function executions per notification, not "
                  "priced):", ""]
        lines += [f"- {line}" for line in price_lines()]
        lines.append("")
    if result.paths:
        lines += _figures_markdown(result)
    lines += ["## Targets", "", "| path | target | measured | limit | verdict |", "|---|---|---|---|---|"]
    for path, target in result.targets():
        lines.append(f"| {path} | {target.name} ({target.rule}) | {target.measured:.2f} | "
                     f"{target.limit:.2f} | {'met' if target.met else '**missed**'} |")
    if result.notes:
        lines += ["", "## Notes from the run", ""]
        lines += [f"- {note}" for note in result.notes]
    if history:
        lines += ["", "## Every run kept in bench/results/ (run-to-run spread on this machine)", "",
                  history]
    return "\n".join(lines) + "\n"


def _figures_markdown(result: BenchResult) -> list[str]:
    lines = [
        "## Figures",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    lines += ["", "Throughput: draining a pre-filled queue. Latency: enqueue → client receive (realtime)",
              "or enqueue → push recorded by the Notification Hubs sink (push), at a paced load. The targets",
              "compare the notifier with the guarantee floor run in the same local Functions host; the bare",
              "floor process is a reference (hosted minus bare: the host's own CPU per notification).", ""]
    lines += ["## CPU per notification, one thread, messages one by one", "",
              "The guarantee floor's code runs on the same messages, paired with the notifier's (thread CPU,",
              "one message at a time, no GIL contention, no host): it drifts far less than the drains'.",
              "",
              "| path | own code (ms) | all code, thread CPU (ms) | guarantee floor, thread CPU (ms) | "
              "notifier/floor | HTTP requests | profiled self time by part (ms) | samples |",
              "|---|---|---|---|---|---|---|---|"]
    for cpu in result.own_cpu:
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.profiled_ms_by_category.items())
        floor = "-" if cpu.floor_total_ms is None else f"{cpu.floor_total_ms:.2f}"
        ratio_text = "-" if cpu.floor_ratio is None else f"{cpu.floor_ratio:.2f}"
        lines.append(f"| {cpu.path} | {cpu.own_ms:.3f} | {cpu.unprofiled_total_ms:.2f} | {floor} | "
                     f"{ratio_text} | {cpu.http_requests_per_notification:.1f} | {parts} | {cpu.samples} |")
    for cpu in result.own_cpu:
        if cpu.top:
            lines += ["", f"Top own functions ({cpu.path}, ms per notification, self time):", ""]
            lines += [f"- `{entry['function']}`: {entry['ms']:.3f}" for entry in cpu.top]
    return [*lines, ""]


def _each(systems: list[Any], pick: Callable[[dict[str, Any]], float], digits: int = 0) -> str:
    return "/".join("-" if s is None else f"{pick(s):.{digits}f}" for s in systems)


def _history_row(data: dict[str, Any]) -> list[str]:
    settings = data.get("settings", {})
    cells = [str(data.get("started_at", "?")),
             f"{settings.get('notifications', '?')}/{settings.get('users', '?')}"]
    paths = {p["path"]: p for p in data.get("paths", [])}
    for name in ("realtime", "push"):
        path = paths.get(name)
        if path is None:
            cells += ["", "", ""]
            continue
        # Runs before the guarantee floor existed have one "floor": the presence floor; runs before the
        # hosted floor have no "hosted_floor".
        systems = [path.get("notifier"), path.get("hosted_floor"), path.get("guarantee_floor"),
                   path.get("presence_floor", path.get("floor"))]
        cells += [_each(systems, lambda s: s["throughput_per_s"]),
                  _each(systems, lambda s: s["latency"]["p50_ms"]),
                  _each(systems, lambda s: s["process_cpu_ms_per_notification"], 1)]
    own = {c["path"]: c["own_ms"] for c in data.get("own_cpu", [])}
    cells.append(" / ".join(f"{own[name]:.2f}" for name in ("realtime", "push") if name in own))
    return cells


def render_history(directory: Path = RESULTS_DIR) -> str:
    """A Markdown table of every run kept in ``directory`` (oldest first), to show run-to-run spread."""
    runs = []
    for path in sorted(directory.glob("bench-*.json")):
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    if not runs:
        return ""
    lines = [
        "Each cell: notifier / guarantee floor in the Functions host / guarantee floor as a bare process / "
        "presence floor (\"-\": a floor the run did not have yet).",
        "",
        "| run (UTC) | N/K | realtime notif/s | realtime p50 ms | realtime CPU ms/notif | push notif/s "
        "| push p50 ms | push CPU ms/notif | own CPU ms realtime / push |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(_history_row(run)) + " |" for run in runs]
    return "\n".join(lines)
