"""CORS of the function app in Azure: off unless the deployment names origins."""

from __future__ import annotations

import json

from tests.unit.infra.bicep import INFRA, load, object_property, text


def test_no_origin_is_allowed_unless_configured() -> None:
    main = load("main.bicep")
    assert main.evaluate(main.params["corsAllowedOrigins"].value) == ""
    passed = text(object_property(main.modules["functionApp"].body, "params.corsAllowedOrigins"))
    assert passed == "empty(corsAllowedOrigins) ? [] : split(corsAllowedOrigins, ',')"


def test_the_site_takes_exactly_the_configured_origins_without_credentials() -> None:
    module = load("modules/function-app.bicep")
    site = module.resources_of_type("Microsoft.Web/sites")[0].body
    assert text(object_property(site, "properties.siteConfig.cors.allowedOrigins")) == "corsAllowedOrigins"
    assert text(object_property(site, "properties.siteConfig.cors.supportCredentials")) == "false"
    assert text(module.params["corsAllowedOrigins"].value) == "[]"


def test_azd_passes_the_origins_from_the_environment() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["corsAllowedOrigins"] == {"value": "${CORS_ALLOWED_ORIGINS=}"}
