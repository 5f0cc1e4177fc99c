"""The devices blueprint declares the two HTTP routes the clients use."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from notify.blueprints.devices import bp


def test_blueprint_declares_put_and_delete_routes() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(bp)
    routes = {}
    for function in app.get_functions():
        trigger: Any = function.get_trigger()
        routes[function.get_function_name()] = (trigger.route, tuple(str(m) for m in trigger.methods))
    assert routes["register_device"][0] == "devices/{installationId}"
    assert "PUT" in routes["register_device"][1][0]
    assert routes["unregister_device"][0] == "devices/{installationId}"
    assert "DELETE" in routes["unregister_device"][1][0]
