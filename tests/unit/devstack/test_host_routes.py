"""Route templates of HTTP triggers in the local Functions host."""

from __future__ import annotations

import pytest

from devstack.functions_host.http_routes import RouteTemplate, RouteTemplateError


def test_literal_route_matches_case_insensitively() -> None:
    route = RouteTemplate("health/live")
    assert route.match("Health/LIVE") == {}
    assert route.match("health") is None
    assert route.match("health/live/extra") is None


def test_named_parameter() -> None:
    assert RouteTemplate("users/{userId}/devices").match("users/alice/devices") == {"userId": "alice"}


def test_int_constraint_rejects_other_values() -> None:
    route = RouteTemplate("items/{id:int}")
    assert route.match("items/42") == {"id": "42"}
    assert route.match("items/abc") is None


def test_optional_parameter_may_be_missing() -> None:
    route = RouteTemplate("greet/{name?}")
    assert route.match("greet") == {}
    assert route.match("greet/bob") == {"name": "bob"}


def test_default_value() -> None:
    assert RouteTemplate("page/{n=1}").match("page") == {"n": "1"}


def test_catch_all_takes_the_rest_of_the_path() -> None:
    assert RouteTemplate("files/{*path}").match("files/a/b/c.txt") == {"path": "a/b/c.txt"}


def test_several_constraints_and_bounds() -> None:
    route = RouteTemplate("n/{value:int:range(1,10)}")
    assert route.match("n/5") == {"value": "5"}
    assert route.match("n/11") is None


def test_guid_and_alpha_and_regex_constraints() -> None:
    assert RouteTemplate("g/{id:guid}").match("g/8b1d7a4e-3f0a-4c55-9a3e-0d7c1c1f2a11") is not None
    assert RouteTemplate("g/{id:guid}").match("g/nope") is None
    assert RouteTemplate("a/{w:alpha}").match("a/abc") == {"w": "abc"}
    assert RouteTemplate("a/{w:alpha}").match("a/ab1") is None
    assert RouteTemplate("r/{code:regex(^[A-Z]+$)}").match("r/AB") == {"code": "AB"}
    assert RouteTemplate("r/{code:regex(^[A-Z]+$)}").match("r/ab1") is None


def test_unknown_constraint_is_an_error() -> None:
    with pytest.raises(RouteTemplateError):
        RouteTemplate("x/{id:nonsense}")
