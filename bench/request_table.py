"""Requests per notification from recorded wire calls, their cost at Azure list prices, and the table.

:func:`tally` turns the :class:`~bench.wire_calls.WireCall` records of a count into per (system, path)
counts: each call is counted once for each subject it concerns, so a queue ``get`` that returned messages of
three notifications counts one ``queue get`` for each (the low-load cost; under load one get takes up to
``batchSize`` messages and costs less per notification). Gets that returned nothing (idle polls) concern no
notification and are reported apart. Failed calls (409, 404, 412) count: Azure bills them too.

:func:`cost_per_million` prices the counts (:data:`PRICES`); :func:`render_text` and
:func:`render_markdown` print the table that ``python -m bench --requests`` shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.wire_calls import WireCall

PATHS = (
    "realtime acked",
    "realtime not acked -> push",
    "offline -> push",
    "offline, no devices",
    "both",
    "duplicate",
)
NOTIFIER, GUARANTEE_FLOOR, PRESENCE_FLOOR = "notifier", "guarantee floor", "presence floor"
SYSTEMS = (NOTIFIER, GUARANTEE_FLOOR, PRESENCE_FLOOR)

# (column key, short label); anything else lands in "other" and is listed in the notes.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("table read", "tbl read"),
    ("table query", "tbl query"),
    ("table insert", "tbl insert"),
    ("table merge", "tbl merge"),
    ("table upsert", "tbl upsert"),
    ("queue put", "q put"),
    ("queue get", "q get"),
    ("queue delete", "q delete"),
    ("webpubsub", "WPS REST"),
    ("events", "WPS event"),
    ("notificationhubs send", "NH send"),
)


def column_of(key: str) -> str:
    """The table column of a ``service operation`` key (``other`` when it has none)."""
    for column, _ in COLUMNS:
        if key == column or (key.startswith(column + " ") and column in ("webpubsub", "events")):
            return column
    return "other"


@dataclass(frozen=True)
class PathRequests:
    """What one system made on one path, in total over ``notifications`` notifications."""

    system: str
    path: str
    notifications: int
    counts: Mapping[str, int]  # "service operation" -> calls
    replies: int = 0  # events the app answered with a body (a message to the client, not a request)

    def per_notification(self, key: str) -> float:
        """Calls per notification of one ``service operation`` key."""
        return self.counts.get(key, 0) / self.notifications if self.notifications else 0.0

    def by_column(self) -> dict[str, float]:
        """Calls per notification per table column (plus ``other``)."""
        columns: dict[str, float] = {}
        for key, count in self.counts.items():
            column = column_of(key)
            columns[column] = columns.get(column, 0.0) + count / max(self.notifications, 1)
        return columns

    def by_service(self) -> dict[str, float]:
        """Calls per notification per service."""
        services: dict[str, float] = {}
        for key, count in self.counts.items():
            service = key.split(" ", 1)[0]
            services[service] = services.get(service, 0.0) + count / max(self.notifications, 1)
        return services

    @property
    def total(self) -> float:
        """Every request per notification."""
        return sum(self.counts.values()) / self.notifications if self.notifications else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with per-notification figures and the cost."""
        return {
            "system": self.system,
            "path": self.path,
            "notifications": self.notifications,
            "counts": dict(self.counts),
            "replies": self.replies,
            "per_notification": self.by_column(),
            "total": self.total,
            "usd_per_million": cost_per_million(self),
        }


Owner = Callable[[str], tuple[str, str] | None]


Owned = tuple[str, str]


def tally(
    calls: Iterable[WireCall], owner: Owner
) -> tuple[dict[Owned, Counter[str]], Counter[Owned], Counter[str]]:
    """Count calls per (system, path) of their subjects' owners, the events answered with a message, and
    the idle polls per queue.

    Subjects nobody owns (setup traffic, the benchmark's own users of other phases) are not counted.
    """
    counts: dict[Owned, Counter[str]] = {}
    replies: Counter[Owned] = Counter()
    idle: Counter[str] = Counter()
    for call in calls:
        if call.service == "queue" and call.operation == "get" and not call.subjects:
            idle[call.resource] += 1
            continue
        for subject in call.subjects:
            owned = owner(subject)
            if owned is not None:
                counts.setdefault(owned, Counter())[call.column] += 1
                if call.replied:
                    replies[owned] += 1
    return counts, replies, idle


# ---- prices ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """The list price of one billed unit, per million units, and where it comes from."""

    service: str
    unit: str
    usd_per_million: float
    source: str


PRICES_AS_OF = "2026-12-01"
PRICES: dict[str, Price] = {
    "table": Price(
        "Table Storage",
        "transaction (any operation, failed ones included; a batch is one)",
        0.036,
        "$0.00036 per 10,000 transactions, Standard LRS (Azure Retail Prices API as quoted in infracost's "
        "storage_table_test golden file); failed requests are billed: learn.microsoft.com/azure/storage/"
        "blobs/map-rest-apis-transaction-categories",
    ),
    "queue": Price(
        "Queue Storage",
        "operation (class 1 and class 2 alike)",
        0.40,
        "$0.004 per 10,000 operations, GPv2 Standard LRS (Azure Retail Prices API as quoted in infracost's "
        "storage_queue_test golden file)",
    ),
    "webpubsub": Price(
        "Web PubSub",
        "outbound message (service to a client or to an event handler, per 2 KB)",
        1.00,
        "$1 per million messages beyond the 1,000,000 per unit per day included (Standard: about $1.61 per "
        "unit-day; c3x.dev azurerm_web_pubsub, plavos.com SignalR pricing); what counts: "
        "learn.microsoft.com/azure/azure-web-pubsub/concept-billing-model",
    ),
    "notificationhubs": Price(
        "Notification Hubs",
        "push",
        1.00,
        "Basic: $10 per namespace-month with 10M pushes, then $1.00 per million (Standard $200, then $10 per "
        "million up to 100M); Azure Retail Prices API as quoted in infracost's "
        "notification_hub_namespace_test golden file; tiers: learn.microsoft.com/azure/notification-hubs/"
        "notification-hubs-push-notification-faq",
    ),
}
CONNECTIONS_PER_USER = 1  # the benchmark's online users have one connection: one outbound message per send


def billed_units(requests: PathRequests) -> dict[str, float]:
    """Billed units per notification by priced service (see :data:`PRICES`).

    Web PubSub bills what leaves the service: each ``send to user`` reaches every connection of the user
    (one here), each event posted to a webhook is one more, and so is the app's answer to an event (the
    ack answer); REST calls into it are not billed.
    Notification Hubs bills pushes: one per send here (one device per user; a send to a tag without devices
    is counted as one, an upper bound).
    """
    units = {"table": 0.0, "queue": 0.0, "webpubsub": 0.0, "notificationhubs": 0.0}
    for key, count in requests.counts.items():
        per = count / max(requests.notifications, 1)
        service, _, operation = key.partition(" ")
        if service in ("table", "queue"):
            units[service] += per
        elif key == "webpubsub send to user":
            units["webpubsub"] += per * CONNECTIONS_PER_USER
        elif service == "events" and operation != "validate":
            units["webpubsub"] += per
        elif key == "notificationhubs send":
            units["notificationhubs"] += per
    units["webpubsub"] += requests.replies / max(requests.notifications, 1)  # answers sent to the client
    return units


def cost_per_million(requests: PathRequests) -> dict[str, float]:
    """USD per million notifications by service, and ``total``, at :data:`PRICES` (usage beyond quotas)."""
    costs = {
        service: units * PRICES[service].usd_per_million for service, units in billed_units(requests).items()
    }
    costs["total"] = sum(costs.values())
    return costs


def executions_per_notification(requests: PathRequests) -> float:
    """Function executions: one per queue message handled and one per event (not priced here)."""
    return requests.per_notification("queue get") + sum(
        requests.per_notification(key)
        for key in requests.counts
        if key.startswith("events ") and key != "events validate"
    )


# ---- the count and its table -------------------------------------------------------------------------------


@dataclass
class RequestCount:
    """One count: every (system, path), the idle polls, notes, and how it was made."""

    notifications_per_path: int
    ack_timeout_s: int
    rows: list[PathRequests] = field(default_factory=list)
    idle_polls: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def row(self, system: str, path: str) -> PathRequests | None:
        """The row of one system on one path."""
        return next((r for r in self.rows if r.system == system and r.path == path), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "notifications_per_path": self.notifications_per_path,
            "ack_timeout_s": self.ack_timeout_s,
            "rows": [r.to_dict() for r in self.rows],
            "idle_polls": dict(self.idle_polls),
            "seconds": self.seconds,
            "notes": list(self.notes),
            "prices": {k: vars(v) for k, v in PRICES.items()},
            "prices_as_of": PRICES_AS_OF,
        }


def _number(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return str(round(value))
    return f"{value:.2f}"


def table_rows(count: RequestCount) -> list[list[str]]:
    """Header and one row per (path, system): per-column requests per notification, total, $ per million."""
    header = [
        "path",
        "system",
        *(label for _, label in COLUMNS),
        "other",
        "total",
        "vs guarantee",
        "$/M notif",
    ]
    rows = [header]
    for path in PATHS:
        floor = count.row(GUARANTEE_FLOOR, path)
        for system in SYSTEMS:
            row = count.row(system, path)
            if row is None:
                continue
            columns = row.by_column()
            delta = row.total - floor.total if floor is not None else 0.0
            rows.append(
                [
                    path if system == SYSTEMS[0] else "",
                    system,
                    *(_number(columns.get(key, 0.0)) for key, _ in COLUMNS),
                    _number(columns.get("other", 0.0)),
                    _number(row.total),
                    "" if system == GUARANTEE_FLOOR or floor is None else f"{delta:+.2f}".replace(".00", ""),
                    f"{cost_per_million(row)['total']:.2f}",
                ]
            )
    return rows


def differences(count: RequestCount) -> list[str]:
    """Per path, the operations where the notifier makes more (or fewer) calls than the guarantee floor."""
    lines = []
    for path in PATHS:
        notifier, floor = count.row(NOTIFIER, path), count.row(GUARANTEE_FLOOR, path)
        if notifier is None or floor is None:
            continue
        keys = sorted(set(notifier.counts) | set(floor.counts))
        parts = [
            f"{key} {notifier.per_notification(key) - floor.per_notification(key):+.2f}".replace(".00", "")
            for key in keys
            if abs(notifier.per_notification(key) - floor.per_notification(key)) > 1e-9
        ]
        text = ", ".join(parts) if parts else "same requests as the guarantee floor"
        answers = (notifier.replies / max(notifier.notifications, 1)) - (
            floor.replies / max(floor.notifications, 1)
        )
        if abs(answers) > 1e-9:  # billed like a message, but no request of its own
            text += f"; plus {answers:+.2f} answer to an event (a Web PubSub message to the client)".replace(
                ".00", ""
            )
        lines.append(f"{path}: {text}")
    return lines


def other_operations(count: RequestCount) -> list[str]:
    """The operations counted under ``other``, per system and path."""
    lines = []
    for row in count.rows:
        others = {k: v for k, v in row.counts.items() if column_of(k) == "other"}
        if others:
            lines.append(
                f"{row.system}, {row.path}: "
                + ", ".join(f"{k} {_number(v / row.notifications)}" for k, v in sorted(others.items()))
            )
    return lines


def render_text(count: RequestCount) -> str:
    """The fixed-width table, the differences from the guarantee floor and the notes."""
    rows = table_rows(count)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"Requests per notification, counted at the wire ({count.notifications_per_path} notifications per "
        f"path and system, ack timeout {count.ack_timeout_s} s; q get = messages received; idle polls "
        "excluded; $/M = USD per million notifications at list prices)"
    ]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("notifier - guarantee floor, per notification:")
    lines += [f"  {line}" for line in differences(count)]
    lines += [f"other: {line}" for line in other_operations(count)]
    if count.idle_polls:
        lines.append(
            "idle polls (empty queue gets, not per notification) during the count: "
            + ", ".join(f"{queue} {n}" for queue, n in sorted(count.idle_polls.items()))
        )
    lines += [f"note: {note}" for note in count.notes]
    return "\n".join(lines)


def render_markdown(count: RequestCount) -> list[str]:
    """The table as Markdown lines (for docs/PERFORMANCE.md)."""
    rows = table_rows(count)
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    lines += ["", "Notifier minus guarantee floor, requests per notification:", ""]
    lines += [f"- {line}" for line in differences(count)]
    others = other_operations(count)
    if others:
        lines += ["", "Counted under *other*:", ""] + [f"- {line}" for line in others]
    return lines


def cost_rows(count: RequestCount) -> list[list[str]]:
    """Header and one row per (path, system): USD per million notifications by service."""
    rows = [["path", "system", "table", "queue", "web pubsub", "notification hubs", "total", "executions"]]
    for path in PATHS:
        for system in SYSTEMS:
            row = count.row(system, path)
            if row is None:
                continue
            cost = cost_per_million(row)
            rows.append(
                [
                    path if system == SYSTEMS[0] else "",
                    system,
                    *(f"{cost[s]:.2f}" for s in ("table", "queue", "webpubsub", "notificationhubs", "total")),
                    _number(executions_per_notification(row)),
                ]
            )
    return rows


def price_lines() -> Sequence[str]:
    """One line per price used, with its source."""
    return [
        f"{p.service}: ${p.usd_per_million:.3f} per million {p.unit}; {p.source}" for p in PRICES.values()
    ]
