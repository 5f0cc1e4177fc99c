"""Installation validation and JSON Patch of the Notification Hubs emulator (pure logic)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.notificationhubs.installations import InstallationError, apply_patch, validate_installation


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "installationId": "dev-1",
        "platform": "apns",
        "pushChannel": "aa11",
        "tags": ["a"],
    }
    base.update(overrides)
    return base


def test_platform_is_case_insensitive_and_normalised() -> None:
    assert validate_installation(body(platform="fcmV1"), "dev-1")["platform"] == "fcmv1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"platform": "nokia"}, "Unknown platform"),
        ({"platform": None}, "platform is required"),
        ({"pushChannel": ""}, "pushChannel"),
        ({"installationId": "other"}, "does not match"),
        ({"tags": ["bad tag"]}, "Invalid tag"),
        ({"tags": ["x" * 121]}, "Invalid tag"),
        ({"tags": [f"t{i}" for i in range(61)]}, "at most 60"),
        ({"userId": "has space"}, "userId"),
        ({"templates": {"t": {"body": {"not": "a string"}}}}, "must be a non-empty string"),
        ({"templates": {"t": {"body": "{broken"}}}, "not valid JSON"),
    ],
)
def test_invalid_installations_are_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InstallationError, match=message):
        validate_installation(body(**overrides), "dev-1")


def test_sixty_tags_of_120_chars_are_accepted() -> None:
    tags = [f"{i:02d}" + "x" * 118 for i in range(60)]
    assert validate_installation(body(tags=tags), "dev-1")["tags"] == tags


def test_patch_tags_channel_user_and_templates() -> None:
    installation = validate_installation(body(tags=["a", "b"]), "dev-1")
    template = json.dumps({"body": json.dumps({"aps": {"alert": "$(m)"}}), "tags": ["t1"]})
    patched = apply_patch(
        installation,
        [
            {"op": "add", "path": "/tags", "value": "c"},
            {"op": "remove", "path": "/tags/a"},
            {"op": "replace", "path": "/pushChannel", "value": "bb22"},
            {"op": "add", "path": "/userId", "value": "user-9"},
            {"op": "add", "path": "/templates/main", "value": template},
            {
                "op": "replace",
                "path": "/templates/main/body",
                "value": json.dumps({"aps": {"alert": "$(x)"}}),
            },
        ],
    )
    assert patched["tags"] == ["b", "c"]
    assert patched["pushChannel"] == "bb22"
    assert patched["userId"] == "user-9"
    assert patched["templates"]["main"]["tags"] == ["t1"]
    assert json.loads(patched["templates"]["main"]["body"]) == {"aps": {"alert": "$(x)"}}
    assert installation["tags"] == ["a", "b"]  # the original is untouched


def test_patch_remove_template_and_replace_all_tags() -> None:
    installation = validate_installation(body(templates={"t": {"body": json.dumps({"aps": {}})}}), "dev-1")
    patched = apply_patch(
        installation,
        [{"op": "remove", "path": "/templates/t"}, {"op": "replace", "path": "/tags", "value": ["x", "y"]}],
    )
    assert patched["templates"] == {}
    assert patched["tags"] == ["x", "y"]


@pytest.mark.parametrize(
    "operations",
    [
        [],
        [{"op": "move", "path": "/tags"}],
        [{"op": "remove", "path": "/pushChannel"}],
        [{"op": "add", "path": "/nonsense", "value": "x"}],
        [{"op": "add", "path": "/tags", "value": "bad tag"}],
        [{"op": "add", "path": "/templates/missing/body", "value": "{}"}],
    ],
)
def test_invalid_patches_are_rejected(operations: list[dict[str, Any]]) -> None:
    installation = validate_installation(body(), "dev-1")
    with pytest.raises(InstallationError):
        apply_patch(installation, operations)
