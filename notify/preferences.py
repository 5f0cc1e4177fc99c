"""A user's notification preferences and what they decide for one notification.

The document (``GET``/``PUT``/``PATCH /api/preferences``)::

    {
      "channels": {"inApp": true, "push": true},                  every type, unless the type says otherwise
      "types": {"marketing": {"push": false}, "chat": {"quietHours": "drop"}},
      "quietHours": {"timeZone": "Europe/Berlin",
                     "windows": [{"days": ["mon", "tue", "wed"], "start": "22:00", "end": "07:00"}]}
    }

Every member is optional. For a channel of a type the most specific answer wins: ``types.<type>.<channel>``,
then ``channels.<channel>``, then the type's defaults from ``NOTIFICATION_TYPES``, then on. During a quiet
hours window (local time in the IANA ``timeZone``; a window whose end is before its start runs past midnight
and belongs to the day it starts on) pushes are deferred to the window's end, or dropped when the type says
``"quietHours": "drop"``; in-app delivery is not affected. A critical notification (``critical`` on the
message, or a type whose defaults say ``critical``) bypasses all of it.

Everything here is pure: :func:`parse_preferences` validates (BadRequestError naming the field), and
:func:`channel_gates` decides for a notification at a given time.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from shared.errors import BadRequestError
from shared.settings import NotificationTypeSettings

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_TYPES = 100
MAX_WINDOWS = 14
MAX_TYPE_LENGTH = 64  # as the message's ``type``
#: The longest a push is deferred in one go: a deadline message lives 7 days (the queue's default TTL).
MAX_DEFERRAL_SECONDS = 6 * 86_400
_DAY = 86_400
_WEEK = 7 * _DAY
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")
QuietAction = Literal["defer", "drop"]


@dataclass(frozen=True)
class ChannelSwitches:
    """On/off per channel; None = not said here."""

    in_app: bool | None = None
    push: bool | None = None


@dataclass(frozen=True)
class TypePreference:
    """What the user said for one notification type."""

    in_app: bool | None = None
    push: bool | None = None
    quiet_hours: QuietAction | None = None


@dataclass(frozen=True)
class QuietWindow:
    """A recurring window: on each of ``days`` (0 = Monday) from ``start`` to ``end`` (seconds of the day).

    ``end <= start`` means the window ends the next day; ``end == 86400`` is midnight.
    """

    days: tuple[int, ...]
    start: int
    end: int

    def length(self) -> int:
        """Seconds from start to end."""
        return self.end - self.start if self.end > self.start else self.end + _DAY - self.start


@dataclass(frozen=True)
class QuietHours:
    """Quiet hours in an IANA time zone."""

    time_zone: str
    windows: tuple[QuietWindow, ...]


@dataclass(frozen=True)
class Preferences:
    """A validated preferences document."""

    channels: ChannelSwitches = ChannelSwitches()
    types: Mapping[str, TypePreference] = field(default_factory=dict)
    quiet_hours: QuietHours | None = None


# Parsing and the canonical document -----------------------------------------------------------------------


def _fail(message: str, path: str) -> BadRequestError:
    return BadRequestError(message, field=path)


def _object(value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{path or 'the document'} must be a JSON object", path)
    for name in value:
        if name not in allowed:
            where = f"{path}.{name}" if path else name
            raise _fail(f"unknown field {where!r}; expected {', '.join(allowed)}", where)
    return value


def _switch(document: dict[str, Any], name: str, path: str) -> bool | None:
    value = document.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise _fail(f"{path}.{name} must be true or false", f"{path}.{name}")


def _time_of_day(value: Any, path: str, is_end: bool) -> int:
    if is_end and value == "24:00":
        return _DAY
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _fail(f"{path} must be a time of day HH:MM or HH:MM:SS (00:00-23:59:59)", path)
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _window(value: Any, path: str) -> QuietWindow:
    document = _object(value, path, ("days", "start", "end"))
    for name in ("start", "end"):
        if name not in document:
            raise _fail(f"{path}.{name} is required", f"{path}.{name}")
    days_value = document.get("days", list(WEEKDAYS))
    if not isinstance(days_value, list) or not days_value:
        raise _fail(f"{path}.days must be a non-empty list of {', '.join(WEEKDAYS)}", f"{path}.days")
    days: set[int] = set()
    for index, day in enumerate(days_value):
        if not isinstance(day, str) or day.lower() not in WEEKDAYS:
            raise _fail(f"{path}.days[{index}] must be one of {', '.join(WEEKDAYS)}", f"{path}.days[{index}]")
        days.add(WEEKDAYS.index(day.lower()))
    start = _time_of_day(document["start"], f"{path}.start", is_end=False)
    end = _time_of_day(document["end"], f"{path}.end", is_end=True)
    if start == end:
        raise _fail(f"{path} is empty: start and end are the same time (00:00-24:00 is all day)", path)
    return QuietWindow(tuple(sorted(days)), start, end)


def _weekly_spans(window: QuietWindow) -> Iterator[tuple[int, int]]:
    """The window as spans of seconds of the week (Monday 00:00 = 0), split where the week wraps."""
    for day in window.days:
        begin = day * _DAY + window.start
        finish = begin + window.length()
        if finish <= _WEEK:
            yield begin, finish
        else:
            yield begin, _WEEK
            yield 0, finish - _WEEK


def _quiet_hours(value: Any, path: str) -> QuietHours | None:
    if value is None:
        return None
    document = _object(value, path, ("timeZone", "windows"))
    zone = document.get("timeZone")
    if not isinstance(zone, str) or zone not in _zones():
        raise _fail(f"{path}.timeZone must be an IANA time zone such as Europe/Berlin, got {zone!r}",
                    f"{path}.timeZone")
    windows_value = document.get("windows")
    if not isinstance(windows_value, list) or not 1 <= len(windows_value) <= MAX_WINDOWS:
        raise _fail(f"{path}.windows must be a list of 1 to {MAX_WINDOWS} windows", f"{path}.windows")
    windows = tuple(_window(w, f"{path}.windows[{i}]") for i, w in enumerate(windows_value))
    for (i, first), (j, second) in itertools.combinations(enumerate(windows), 2):
        for (a0, a1), (b0, b1) in itertools.product(_weekly_spans(first), _weekly_spans(second)):
            if a0 < b1 and b0 < a1:
                raise _fail(f"{path}.windows[{j}] overlaps {path}.windows[{i}]", f"{path}.windows[{j}]")
    return QuietHours(zone, windows)


def parse_preferences(document: Any) -> Preferences:
    """Validate a preferences document; raise BadRequestError whose ``field`` names what is wrong."""
    root = _object(document, "", ("channels", "types", "quietHours"))
    channels_value = root.get("channels")
    channels_doc = _object({} if channels_value is None else channels_value, "channels", ("inApp", "push"))
    channels = ChannelSwitches(
        _switch(channels_doc, "inApp", "channels"), _switch(channels_doc, "push", "channels")
    )
    types_value = root.get("types")
    types_value = {} if types_value is None else types_value
    if not isinstance(types_value, dict):
        raise _fail("types must be a JSON object of type name -> preferences", "types")
    if len(types_value) > MAX_TYPES:
        raise _fail(f"types may name at most {MAX_TYPES} types", "types")
    types: dict[str, TypePreference] = {}
    for name, value in types_value.items():
        path = f"types.{name}"
        if not 1 <= len(name) <= MAX_TYPE_LENGTH:
            raise _fail(f"a type name must be 1-{MAX_TYPE_LENGTH} characters", path)
        entry = _object(value, path, ("inApp", "push", "quietHours"))
        action = entry.get("quietHours")
        if action is not None and action not in ("defer", "drop"):
            raise _fail(f"{path}.quietHours must be defer or drop", f"{path}.quietHours")
        types[name] = TypePreference(_switch(entry, "inApp", path), _switch(entry, "push", path), action)
    return Preferences(channels, types, _quiet_hours(root.get("quietHours"), "quietHours"))


def _time_text(seconds: int) -> str:
    if seconds == _DAY:
        return "24:00"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _switches(in_app: bool | None, push: bool | None) -> dict[str, bool]:
    result: dict[str, bool] = {}
    if in_app is not None:
        result["inApp"] = in_app
    if push is not None:
        result["push"] = push
    return result


def preferences_document(preferences: Preferences) -> dict[str, Any]:
    """The canonical JSON document of ``preferences`` (what GET answers and what is stored)."""
    types: dict[str, Any] = {}
    for name, entry in sorted(preferences.types.items()):
        item: dict[str, Any] = _switches(entry.in_app, entry.push)
        if entry.quiet_hours is not None:
            item["quietHours"] = entry.quiet_hours
        types[name] = item
    quiet: dict[str, Any] | None = None
    if preferences.quiet_hours is not None:
        quiet = {
            "timeZone": preferences.quiet_hours.time_zone,
            "windows": [
                {"days": [WEEKDAYS[d] for d in w.days], "start": _time_text(w.start),
                 "end": _time_text(w.end)}
                for w in preferences.quiet_hours.windows
            ],
        }
    channels = _switches(preferences.channels.in_app, preferences.channels.push)
    return {"channels": channels, "types": types, "quietHours": quiet}


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7396): objects merge member by member, null removes a member."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


# Deciding for one notification ---------------------------------------------------------------------------


class GateKind(StrEnum):
    """What preferences say about one channel of one notification."""

    ALLOW = "allow"
    SUPPRESS = "suppress"  # muted, or dropped during quiet hours; ``rule`` says which
    DEFER = "defer"  # quiet hours: send at ``until``


@dataclass(frozen=True)
class Gate:
    """The answer for one channel: allow, suppress (with the rule) or defer (until a time, with the rule)."""

    kind: GateKind = GateKind.ALLOW
    rule: str = ""
    until: float = 0.0


ALLOW = Gate()


def _local(day: date, seconds: int, zone: ZoneInfo) -> float:
    """The instant of the wall-clock time ``seconds`` after midnight of ``day`` in ``zone``.

    Aware datetime arithmetic is wall-clock arithmetic; a time in a DST gap resolves with fold=0, i.e. with
    the offset before the change (02:30 on a spring-forward night is 03:30 after it).
    """
    return (datetime.combine(day, time(0), tzinfo=zone) + timedelta(seconds=seconds)).timestamp()


def _window_end_if_inside(window: QuietWindow, moment: float, zone: ZoneInfo) -> float | None:
    today = datetime.fromtimestamp(moment, zone).date()
    for day in (today - timedelta(days=1), today):
        if day.weekday() not in window.days:
            continue
        begin = _local(day, window.start, zone)
        finish = _local(day, window.start + window.length(), zone)
        if begin <= moment < finish:
            return finish
    return None


def quiet_until(quiet_hours: QuietHours, now: float) -> float | None:
    """When the quiet hours around ``now`` end (following windows that abut), or None when not quiet."""
    zone = ZoneInfo(quiet_hours.time_zone)
    until: float | None = None
    moment = now
    for _ in range(7 * len(quiet_hours.windows) + 1):  # abutting windows chain; overlaps are refused
        ends = [e for w in quiet_hours.windows if (e := _window_end_if_inside(w, moment, zone)) is not None]
        if not ends:
            break
        until = moment = max(ends)
    return until


def _resolve(
    notification_type: str, preferences: Preferences, defaults: NotificationTypeSettings, channel: str
) -> tuple[bool, str]:
    entry = preferences.types.get(notification_type, TypePreference())
    name = "inApp" if channel == "in_app" else "push"
    said_by_type: bool | None = getattr(entry, channel)
    if said_by_type is not None:
        return said_by_type, f"preferences.types.{notification_type}.{name}"
    said_for_all: bool | None = getattr(preferences.channels, channel)
    if said_for_all is not None:
        return said_for_all, f"preferences.channels.{name}"
    return bool(getattr(defaults, channel)), f"NOTIFICATION_TYPES.{notification_type}.{name}"


def channel_gates(
    notification_type: str,
    critical: bool,
    preferences: Preferences,
    defaults: NotificationTypeSettings,
    now: float,
) -> tuple[Gate, Gate]:
    """(in-app gate, push gate) for a notification of ``notification_type`` at ``now``."""
    if critical or defaults.critical:
        return ALLOW, ALLOW
    in_app_on, in_app_rule = _resolve(notification_type, preferences, defaults, "in_app")
    push_on, push_rule = _resolve(notification_type, preferences, defaults, "push")
    in_app = ALLOW if in_app_on else Gate(GateKind.SUPPRESS, in_app_rule)
    if not push_on:
        return in_app, Gate(GateKind.SUPPRESS, push_rule)
    if preferences.quiet_hours is None:
        return in_app, ALLOW
    until = quiet_until(preferences.quiet_hours, now)
    if until is None:
        return in_app, ALLOW
    # Quiet "always" still wakes up within the life of a queue message (7 days) and decides again.
    until = min(until, now + MAX_DEFERRAL_SECONDS)
    entry = preferences.types.get(notification_type, TypePreference())
    action = entry.quiet_hours or defaults.quiet_hours
    if action == "drop":
        return in_app, Gate(GateKind.SUPPRESS, "preferences.quietHours (drop)")
    return in_app, Gate(GateKind.DEFER, "preferences.quietHours", float(math.ceil(until)))
