"""local.settings.json and host.json handling of the local Functions host."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from devstack.functions_host.settings_loader import (
    QueueOptions,
    SettingsError,
    apply_host_json_overrides,
    apply_local_settings,
    load_local_settings,
    parse_timespan,
    route_prefix,
)


def test_environment_wins_over_local_settings_like_core_tools() -> None:
    environ = {"A": "from-env", "B": ""}
    skipped = apply_local_settings({"A": "from-file", "B": "file-b", "C": "file-c"}, environ)
    assert environ == {"A": "from-env", "B": "file-b", "C": "file-c"}
    assert skipped == ["A"]


def test_empty_local_values_are_not_set() -> None:
    environ: dict[str, str] = {}
    apply_local_settings({"EMPTY": ""}, environ)
    assert "EMPTY" not in environ


def test_load_local_settings_reads_values(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"X": "1", "N": None}}))
    assert load_local_settings(path) == {"X": "1", "N": ""}
    assert load_local_settings(tmp_path / "missing.json") == {}


def test_encrypted_local_settings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": True, "Values": {"X": "secret"}}))
    with pytest.raises(SettingsError, match="encrypted"):
        load_local_settings(path)


def test_route_prefix_default_and_override() -> None:
    assert route_prefix({}) == "api"
    assert route_prefix({"extensions": {"http": {"routePrefix": ""}}}) == ""
    assert route_prefix({"extensions": {"http": {"routePrefix": "/v1/"}}}) == "v1"


def test_queue_defaults_are_the_extension_defaults() -> None:
    options = QueueOptions.from_host_json({})
    assert options.batch_size == 16
    assert options.max_dequeue_count == 5
    assert options.visibility_timeout == timedelta(0)
    assert options.max_polling_interval == timedelta(minutes=1)
    assert options.message_encoding == "base64"


def test_queue_settings_are_read_case_insensitively() -> None:
    options = QueueOptions.from_host_json(
        {
            "extensions": {
                "queues": {
                    "BatchSize": 4,
                    "maxDequeueCount": 2,
                    "messageEncoding": "None",
                    "visibilityTimeout": "00:00:05",
                    "newBatchThreshold": 1,
                }
            }
        }
    )
    assert (options.batch_size, options.max_dequeue_count, options.message_encoding) == (4, 2, "none")
    assert options.visibility_timeout == timedelta(seconds=5)
    assert options.new_batch_threshold == 1


@pytest.mark.parametrize(
    "queues",
    [
        {"batchSize": 33},
        {"maxPollingInterval": "00:00:00.05"},
        {"messageEncoding": "utf8"},
        {"visibilityTimeout": "5s"},
    ],
)
def test_invalid_queue_settings_are_rejected(queues: dict[str, object]) -> None:
    with pytest.raises(SettingsError, match=r"extensions\.queues"):
        QueueOptions.from_host_json({"extensions": {"queues": queues}})


def test_timespan_forms() -> None:
    assert parse_timespan("00:01:00", "x") == timedelta(minutes=1)
    assert parse_timespan("1.00:00:00.5", "x") == timedelta(days=1, milliseconds=500)


def test_app_settings_override_host_json_like_the_host() -> None:
    queues = {"visibilityTimeout": "00:00:05", "batchSize": 16}
    host_json = {"version": "2.0", "extensions": {"queues": queues}}
    overridden = apply_host_json_overrides(
        host_json,
        {
            "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
            "azurefunctionsjobhost__Extensions__Queues__maxDequeueCount": "2",
            "AzureFunctionsJobHost__extensions__http__routePrefix": "v1",
            "OTHER": "x",
        },
    )
    options = QueueOptions.from_host_json(overridden)
    assert options.visibility_timeout == timedelta(0)
    assert options.max_dequeue_count == 2
    assert options.batch_size == 16
    assert route_prefix(overridden) == "v1"
    assert host_json["extensions"]["queues"]["visibilityTimeout"] == "00:00:05"  # input unchanged
