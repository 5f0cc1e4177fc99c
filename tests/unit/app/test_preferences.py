"""Preferences: validation that names the field, the canonical document, merge patches, quiet hours in IANA
zones (midnight, DST, abutting windows) and what the gates say for a notification."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notify.preferences import (
    ALLOW,
    MAX_DEFERRAL_SECONDS,
    Gate,
    GateKind,
    Preferences,
    channel_gates,
    merge_patch,
    parse_preferences,
    preferences_document,
    quiet_until,
)
from shared.errors import BadRequestError
from shared.settings import NotificationTypeSettings, Settings

BERLIN = ZoneInfo("Europe/Berlin")
DEFAULTS = NotificationTypeSettings()


def at(zone: str, *parts: int) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp()  # type: ignore[misc]


def window(day: str, start: str, end: str, *more_days: str) -> dict[str, Any]:
    return {"days": [day, *more_days], "start": start, "end": end}


def utc(*windows: dict[str, Any]) -> dict[str, Any]:
    return {"quietHours": {"timeZone": "UTC", "windows": list(windows)}}


def quiet(zone: str, *windows: dict[str, Any]) -> Preferences:
    return parse_preferences({"quietHours": {"timeZone": zone, "windows": list(windows)}})


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([], ""),
        ({"sound": True}, "sound"),
        ({"channels": {"push": "no"}}, "channels.push"),
        ({"channels": {"email": True}}, "channels.email"),
        ({"types": []}, "types"),
        ({"types": {"chat": {"push": 1}}}, "types.chat.push"),
        ({"types": {"chat": {"sound": True}}}, "types.chat.sound"),
        ({"types": {"chat": {"quietHours": "later"}}}, "types.chat.quietHours"),
        ({"types": {"": {}}}, "types."),
        ({"types": {"t" * 65: {}}}, "types." + "t" * 65),
        ({"quietHours": {"timeZone": "Mars/Olympus", "windows": [{"start": "22:00", "end": "07:00"}]}},
         "quietHours.timeZone"),
        ({"quietHours": {"timeZone": "/etc/localtime", "windows": [{"start": "22:00", "end": "07:00"}]}},
         "quietHours.timeZone"),
        ({"quietHours": {"timeZone": "UTC"}}, "quietHours.windows"),
        ({"quietHours": {"timeZone": "UTC", "windows": []}}, "quietHours.windows"),
        ({"quietHours": {"timeZone": "UTC", "windows": [{"start": "22:00"}]}}, "quietHours.windows[0].end"),
        ({"quietHours": {"timeZone": "UTC", "windows": [{"start": "25:00", "end": "07:00"}]}},
         "quietHours.windows[0].start"),
        ({"quietHours": {"timeZone": "UTC", "windows": [{"start": "7", "end": "08:00"}]}},
         "quietHours.windows[0].start"),
        ({"quietHours": {"timeZone": "UTC", "windows": [{"start": "08:00", "end": "08:00"}]}},
         "quietHours.windows[0]"),
        (utc(window("fri", "08:00", "09:00", "caturday")), "quietHours.windows[0].days[1]"),
        ({"quietHours": {"timeZone": "UTC", "windows": [{"days": [], "start": "08:00", "end": "09:00"}]}},
         "quietHours.windows[0].days"),
        ({"quietHours": {"timeZone": "UTC", "windows": [{"start": "08:00", "end": "09:00", "note": 1}]}},
         "quietHours.windows[0].note"),
        # Overlaps: the same day, across midnight into the next day, and across the end of the week.
        ({"quietHours": {"timeZone": "UTC", "windows": [{"start": "08:00", "end": "10:00"},
                                                         {"start": "09:00", "end": "11:00"}]}},
         "quietHours.windows[1]"),
        (utc(window("mon", "22:00", "07:00"), window("tue", "06:00", "08:00")), "quietHours.windows[1]"),
        (utc(window("sun", "22:00", "07:00"), window("mon", "06:59", "08:00")), "quietHours.windows[1]"),
    ],
)
def test_invalid_documents_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_preferences(document)
    assert info.value.field == field, info.value.message


def test_abutting_windows_are_allowed_and_the_document_is_canonical() -> None:
    document = {
        "channels": {"push": True},
        "types": {"marketing": {"push": False}, "chat": {"quietHours": "drop", "inApp": True}},
        "quietHours": {"timeZone": "Europe/Berlin", "windows": [
            {"days": ["fri", "mon"], "start": "22:00", "end": "07:00"},
            {"days": ["tue"], "start": "07:00", "end": "12:00"},
            {"start": "12:00:30", "end": "12:30"},
        ]},
    }
    canonical = preferences_document(parse_preferences(document))
    assert canonical == {
        "channels": {"push": True},
        "types": {"chat": {"inApp": True, "quietHours": "drop"}, "marketing": {"push": False}},
        "quietHours": {"timeZone": "Europe/Berlin", "windows": [
            {"days": ["mon", "fri"], "start": "22:00", "end": "07:00"},
            {"days": ["tue"], "start": "07:00", "end": "12:00"},
            {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "12:00:30", "end": "12:30"},
        ]},
    }
    assert preferences_document(parse_preferences(canonical)) == canonical
    assert preferences_document(parse_preferences({})) == {"channels": {}, "types": {}, "quietHours": None}


def test_merge_patch_merges_objects_and_null_removes() -> None:
    stored = {"channels": {"push": False}, "types": {"chat": {"push": False}, "news": {"inApp": False}},
              "quietHours": None}
    patch = {"types": {"chat": None, "news": {"push": False}}, "channels": {"push": None, "inApp": True}}
    assert merge_patch(stored, patch) == {
        "channels": {"inApp": True}, "types": {"news": {"inApp": False, "push": False}}, "quietHours": None
    }
    assert merge_patch(stored, {"quietHours": {"timeZone": "UTC"}})["quietHours"] == {"timeZone": "UTC"}


def test_a_window_past_midnight_belongs_to_the_day_it_starts_on() -> None:
    prefs = quiet("Europe/Berlin", {"days": ["mon"], "start": "22:00", "end": "07:00"})
    assert prefs.quiet_hours is not None
    # Monday 2026-03-02 23:30 Berlin: quiet until Tuesday 07:00 Berlin.
    assert quiet_until(prefs.quiet_hours, at("Europe/Berlin", 2026, 3, 2, 23, 30)) == at(
        "Europe/Berlin", 2026, 3, 3, 7, 0
    )
    assert quiet_until(prefs.quiet_hours, at("Europe/Berlin", 2026, 3, 3, 6, 59)) == at(
        "Europe/Berlin", 2026, 3, 3, 7, 0
    )
    assert quiet_until(prefs.quiet_hours, at("Europe/Berlin", 2026, 3, 3, 7, 0)) is None
    # Sunday night is not a Monday window.
    assert quiet_until(prefs.quiet_hours, at("Europe/Berlin", 2026, 3, 1, 23, 30)) is None


def test_quiet_hours_are_local_time_in_the_zone_not_utc() -> None:
    prefs = quiet("Asia/Kolkata", {"start": "09:00", "end": "10:00"})
    assert prefs.quiet_hours is not None
    ist_nine_thirty = at("Asia/Kolkata", 2026, 6, 1, 9, 30)  # 04:00 UTC
    assert quiet_until(prefs.quiet_hours, ist_nine_thirty) == at("Asia/Kolkata", 2026, 6, 1, 10, 0)
    assert quiet_until(prefs.quiet_hours, at("UTC", 2026, 6, 1, 9, 30)) is None  # 15:00 in Kolkata


def test_windows_across_a_dst_change_end_at_the_local_time() -> None:
    prefs = quiet("Europe/Berlin", {"start": "01:00", "end": "04:00"})
    assert prefs.quiet_hours is not None
    # 2026-03-29: clocks go from 02:00 to 03:00 in Berlin, so that night's window lasts two hours.
    start = at("Europe/Berlin", 2026, 3, 29, 1, 30)
    until = quiet_until(prefs.quiet_hours, start)
    assert until == at("Europe/Berlin", 2026, 3, 29, 4, 0)
    assert until is not None and until - start == 1.5 * 3600
    # 2026-10-25: clocks go back from 03:00 to 02:00: four hours.
    autumn = at("Europe/Berlin", 2026, 10, 25, 0, 59)
    assert quiet_until(prefs.quiet_hours, autumn + 60) == at("Europe/Berlin", 2026, 10, 25, 4, 0)


def test_abutting_windows_chain_to_the_last_end() -> None:
    prefs = quiet("UTC", {"days": ["mon"], "start": "22:00", "end": "24:00"},
                  {"days": ["tue"], "start": "00:00", "end": "06:00"})
    assert prefs.quiet_hours is not None
    assert quiet_until(prefs.quiet_hours, at("UTC", 2026, 3, 2, 23, 0)) == at("UTC", 2026, 3, 3, 6, 0)


def test_the_most_specific_switch_wins_and_names_its_rule() -> None:
    prefs = parse_preferences({"channels": {"push": False}, "types": {"chat": {"push": True}}})
    assert channel_gates("chat", False, prefs, DEFAULTS, 0.0) == (ALLOW, ALLOW)
    assert channel_gates("news", False, prefs, DEFAULTS, 0.0) == (
        ALLOW, Gate(GateKind.SUPPRESS, "preferences.channels.push")
    )
    off_by_default = NotificationTypeSettings(push=False, in_app=False)
    assert channel_gates("promo", False, Preferences(), off_by_default, 0.0) == (
        Gate(GateKind.SUPPRESS, "NOTIFICATION_TYPES.promo.inApp"),
        Gate(GateKind.SUPPRESS, "NOTIFICATION_TYPES.promo.push"),
    )
    by_type = parse_preferences({"types": {"chat": {"inApp": False}}})
    assert channel_gates("chat", False, by_type, DEFAULTS, 0.0)[0] == Gate(
        GateKind.SUPPRESS, "preferences.types.chat.inApp"
    )


def test_quiet_hours_defer_or_drop_pushes_only_and_critical_bypasses_everything() -> None:
    prefs = parse_preferences({
        "channels": {"push": False, "inApp": False},
        "types": {"alarm": {"push": True}, "digest": {"push": True, "quietHours": "drop"}},
        "quietHours": {"timeZone": "UTC", "windows": [{"days": ["tue"], "start": "00:00", "end": "24:00"}]},
    })
    now = at("UTC", 2026, 5, 5, 12, 0)  # a Tuesday
    end = at("UTC", 2026, 5, 6, 0, 0)
    assert channel_gates("alarm", False, prefs, DEFAULTS, now)[1] == Gate(
        GateKind.DEFER, "preferences.quietHours", end
    )
    assert channel_gates("digest", False, prefs, DEFAULTS, now)[1] == Gate(
        GateKind.SUPPRESS, "preferences.quietHours (drop)"
    )
    dropping = NotificationTypeSettings(quiet_hours="drop")
    assert channel_gates("alarm", False, prefs, dropping, now)[1].kind is GateKind.SUPPRESS
    assert channel_gates("alarm", True, prefs, DEFAULTS, now) == (ALLOW, ALLOW)
    assert channel_gates("news", False, prefs, NotificationTypeSettings(critical=True), now) == (ALLOW, ALLOW)


def environ(**values: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "WebPubSubConnectionString": "Endpoint=http://x;AccessKey=k;Version=1.0;",
        "NOTIFICATION_HUBS_CONNECTION_STRING": "Endpoint=sb://x/;SharedAccessKeyName=n;SharedAccessKey=k",
        **values,
    }


def test_type_defaults_come_from_notification_types_with_a_wildcard() -> None:
    settings = Settings.from_environ(environ(NOTIFICATION_TYPES=(
        '{"marketing": {"push": false, "priority": "normal", "quietHours": "drop"},'
        ' "security": {"critical": true}, "*": {"priority": "normal"}}'
    )))
    assert settings.type_settings("marketing") == NotificationTypeSettings(
        push=False, priority="normal", quiet_hours="drop"
    )
    assert settings.type_settings("security").critical
    assert settings.type_settings("chat") == NotificationTypeSettings(priority="normal")
    assert Settings.from_environ(environ()).type_settings("chat") == NotificationTypeSettings()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("[]", "JSON object"),
        ("{", "JSON object"),
        ('{"chat": true}', "chat"),
        ('{"chat": {"sound": true}}', "chat.sound"),
        ('{"chat": {"push": "no"}}', "chat.push"),
        ('{"chat": {"priority": "urgent"}}', "chat.priority"),
        ('{"chat": {"quietHours": "later"}}', "chat.quietHours"),
    ],
)
def test_a_malformed_notification_types_setting_names_itself_and_the_entry(value: str, says: str) -> None:
    from shared.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ(environ(NOTIFICATION_TYPES=value))
    assert "NOTIFICATION_TYPES" in str(info.value) and says in str(info.value)


def test_quiet_hours_that_never_end_still_wake_up_within_six_days() -> None:
    always = quiet("UTC", {"start": "00:00", "end": "24:00"})
    now = at("UTC", 2026, 5, 5, 12, 0)
    push = channel_gates("chat", False, always, DEFAULTS, now)[1]
    assert push == Gate(GateKind.DEFER, "preferences.quietHours", now + MAX_DEFERRAL_SECONDS)
