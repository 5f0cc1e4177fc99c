"""TypedData as the host builds and reads it: conversions, queue binding data, HTTP responses (pure logic)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from devstack.functions_host import function_rpc as protos
from devstack.functions_host.http_trigger import to_web_response
from devstack.functions_host.typed_data import (
    apply_binding_data,
    dotnet_iso,
    from_typed_data,
    newtonsoft_indented,
    to_typed_data,
)


def test_values_go_as_the_hosts_to_rpc_sends_them() -> None:
    assert to_typed_data("a").WhichOneof("data") == "string"
    assert to_typed_data(b"a").WhichOneof("data") == "bytes"
    assert to_typed_data(1.5).double == 1.5
    assert to_typed_data(5).json == "5"  # a long is serialised (ToRpcDefault), not sent as int
    assert to_typed_data({"a": "é"}).json == '{"a":"é"}'
    assert to_typed_data(None).WhichOneof("data") is None


def test_values_come_back_as_the_hosts_to_object_reads_them() -> None:
    assert from_typed_data(protos.TypedData(json='{"a": [1]}')) == {"a": [1]}
    assert from_typed_data(protos.TypedData(string="x")) == "x"
    assert from_typed_data(protos.TypedData(bytes=b"\x00")) == b"\x00"
    assert from_typed_data(protos.TypedData(int=-3)) == -3
    assert from_typed_data(protos.TypedData()) is None


def test_indented_json_is_what_jtoken_to_string_writes() -> None:
    assert newtonsoft_indented({"a": {"b": [1, 2]}, "c": []}) == (
        '{\n  "a": {\n    "b": [\n      1,\n      2\n    ]\n  },\n  "c": []\n}'
    )


def test_date_time_offsets_are_written_like_newtonsoft() -> None:
    assert dotnet_iso(datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)) == "2026-11-24T12:00:00+00:00"
    assert dotnet_iso(datetime(2026, 11, 24, 12, 0, 0, 500000, tzinfo=UTC)) == "2026-11-24T12:00:00.5+00:00"


def test_json_object_trigger_values_add_their_top_level_properties_to_the_metadata() -> None:
    metadata = {"Id": to_typed_data("queue-id"), "DequeueCount": to_typed_data(1)}
    body = json.dumps({"id": "body-id", "n": 2, "ok": True, "nested": {"x": 1}, "list": [1], "none": None})
    apply_binding_data(body, metadata)
    assert metadata["Id"].string == "body-id"  # replaced, keeping the host's spelling of the key
    assert "id" not in metadata
    assert (metadata["n"].string, metadata["ok"].string) == ("2", "True")
    assert json.loads(metadata["nested"].json) == {"x": 1}
    assert "list" not in metadata and "none" not in metadata


def test_values_that_are_not_json_objects_add_nothing() -> None:
    for value in ("plain", "[1, 2]", "{not json}", ""):
        metadata: dict[str, object] = {}
        apply_binding_data(value, metadata)
        assert metadata == {}


def test_an_rpc_http_response_maps_status_headers_cookies_and_body() -> None:
    http = protos.RpcHttp(
        status_code="201",
        headers={"content-type": "application/json", "x-a": "1"},
        body=protos.TypedData(bytes=b"{}"),
        cookies=[
            protos.RpcHttpCookie(
                name="s",
                value="v",
                path=protos.NullableString(value="/"),
                http_only=protos.NullableBool(value=True),
                same_site=protos.RpcHttpCookie.SameSite.Lax,
            )
        ],
    )
    response = to_web_response(protos.TypedData(http=http))
    assert (response.status, response.body) == (201, b"{}")
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers.getall("Set-Cookie") == ["s=v; path=/; samesite=lax; httponly"]


def test_a_string_return_is_text_plain_and_nothing_is_204() -> None:
    text = to_web_response(protos.TypedData(string="hi"))
    assert (text.status, text.body, text.headers["Content-Type"]) == (200, b"hi", "text/plain; charset=utf-8")
    assert to_web_response(None).status == 204
