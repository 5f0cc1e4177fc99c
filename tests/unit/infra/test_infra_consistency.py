"""The Bicep deployment matches the code: settings, queues, tables, hub events, roles, outputs, defaults.

What the app reads is derived from the code, never copied here: setting names from the reader calls in
``shared/settings.py`` (parsed with ``ast``) and from the function bindings of ``function_app.app``
(``%NAME%`` expressions and ``connection``). What the Bicep sets is evaluated from ``infra/main.bicep``
(``var appSettings``) with the static reader in ``tests/unit/infra/bicep.py``.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from shared import settings as settings_module
from tests.function_index import indexed_functions
from tests.unit.infra.bicep import (
    INFRA,
    REPO,
    BicepFile,
    Deferred,
    all_bicep_files,
    load,
    object_property,
    string_literal,
    text,
)

SETTINGS_PY = REPO / "shared" / "settings.py"

# Microsoft's built-in role ids, copied from the "Azure built-in roles" page
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
# (source: MicrosoftDocs/azure-docs articles/role-based-access-control/built-in-roles.md, tables "Storage",
# "Web and Mobile", "Security", "Monitor"; read 2026-11).
BUILT_IN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Queue Data Message Processor": "8a0f0c08-91a1-4084-bc3d-661d67233fed",
    "Storage Queue Data Message Sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "Storage Queue Data Reader": "19e7f393-937e-4f77-808e-94535e297925",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Storage Table Data Reader": "76199698-9eea-4c19-bc75-cec21354c6b6",
    "Web PubSub Service Owner": "12cf5a90-567b-43ae-8102-96cf46c7d9b4",
    "Web PubSub Service Reader": "bfb1c7d2-fb1a-466b-b2ba-aee63b92deaf",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}

# What the app's identity must be able to do, and on which resource type (see infra/README.md).
APP_ROLES = {
    "Storage Blob Data Owner": "Microsoft.Storage/storageAccounts",  # host storage, deployment container
    "Storage Queue Data Contributor": "Microsoft.Storage/storageAccounts",  # triggers, deadlines, poison
    "Storage Table Data Contributor": "Microsoft.Storage/storageAccounts",  # deliveries, devices
    "Web PubSub Service Owner": "Microsoft.SignalRService/webPubSub",  # send, connection_exists, tokens
    "Key Vault Secrets User": "Microsoft.KeyVault/vaults",  # NH connection string reference
    "Monitoring Metrics Publisher": "Microsoft.Insights/components",  # telemetry without local auth
}

# Settings Flex Consumption rejects (functions-app-settings#flex-consumption-plan-deprecations).
FLEX_FORBIDDEN_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
BINDING_EXPRESSION = re.compile(r"%([A-Za-z0-9_]+)%")


# ---- what the code reads ------------------------------------------------------------------------------


@cache
def settings_reads() -> dict[str, str]:
    """Setting name -> reader method, from ``reader.<method>("NAME", ...)`` calls in shared/settings.py.

    Reader methods are the methods, in any class of the module, whose first argument after ``self`` is
    called ``name`` (``optional``, ``required``, ``integer``, ``queue_name``, ...).
    """
    tree = ast.parse(SETTINGS_PY.read_text(encoding="utf-8"))
    methods = {
        function.name
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef)
        for function in cls.body
        if isinstance(function, ast.FunctionDef)
        and len(function.args.args) >= 2
        and function.args.args[1].arg == "name"
    }
    reads: dict[str, str] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in methods
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            reads.setdefault(node.args[0].value, node.func.attr)
    return reads


@cache
def function_bindings() -> list[dict[str, Any]]:
    """Every binding of every function of the app, as the worker indexes them."""
    return [
        binding
        for function in indexed_functions()
        for binding in function.get_bindings_dict()["bindings"]
    ]


def binding_settings() -> set[str]:
    """Settings the bindings name: ``%NAME%`` expressions and ``connection`` prefixes."""
    names: set[str] = set()
    for binding in function_bindings():
        for key, value in binding.items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                if not isinstance(item, str):
                    continue
                names.update(BINDING_EXPRESSION.findall(item))
                if key in ("connection", "connections"):
                    names.add(item)
    return names


def app_settings() -> set[str]:
    """Every setting the app or its bindings read."""
    return set(settings_reads()) | binding_settings()


def settings_read_with(method: str) -> set[str]:
    """Settings read through one reader method (``queue_name``, ``table_name``)."""
    return {name for name, used in settings_reads().items() if used == method}


def queue_trigger_settings() -> set[str]:
    """Settings naming a queue that a queue trigger reads (the host moves failures to ``<queue>-poison``)."""
    return {
        name
        for binding in function_bindings()
        if binding["type"] == "queueTrigger"
        for name in BINDING_EXPRESSION.findall(binding["queueName"])
    }


def webpubsub_events(event_type: str) -> set[str]:
    """Event names of the Web PubSub triggers of one event type (``system`` or ``user``)."""
    return {
        binding["eventName"]
        for binding in function_bindings()
        if binding["type"] == "webPubSubTrigger" and binding["eventType"].lower() == event_type
    }


# ---- what the deployment sets ------------------------------------------------------------------------


def main() -> BicepFile:
    return load("main.bicep")


def bicep_app_settings() -> dict[str, Any]:
    """Name -> value of the app settings main.bicep gives the function app."""
    settings = main().evaluate(main().variables["appSettings"].value)
    assert isinstance(settings, dict)
    return settings


def module_param(module: str, param: str) -> Any:
    """The value main.bicep passes to a module parameter."""
    body = main().modules[module].body
    return main().evaluate(object_property(body, f"params.{param}"))


def markdown_table(markdown: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first table after ``heading``, without its header and separator."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip("# ").strip() == heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def first_column_names(rows: list[list[str]]) -> set[str]:
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row[0])}


def infra_readme_table(heading: str) -> set[str]:
    return first_column_names(markdown_table((INFRA / "README.md").read_text(encoding="utf-8"), heading))


def not_set_in_azure() -> set[str]:
    """Settings infra/README.md documents as deliberately not set by the Bicep."""
    return infra_readme_table("Settings the app reads that the Bicep deliberately does not set")


def host_settings() -> set[str]:
    """Settings infra/README.md documents as set for the Functions host and platform."""
    return infra_readme_table(
        "Settings the Bicep sets for the Functions host and platform (not read by the app)"
    )


# ---- settings ----------------------------------------------------------------------------------------


def test_settings_are_derived_from_the_code() -> None:
    reads = settings_reads()
    # Every default belongs to a setting that is read somewhere (by settings.py or by a binding).
    assert set(settings_module.DEFAULTS) <= set(reads) | binding_settings()
    assert set(settings_module.BINDING_SETTINGS) <= binding_settings()
    assert "AzureWebJobsStorage" in binding_settings()  # the queue triggers' connection


def test_every_setting_the_app_reads_is_set_by_the_bicep_or_documented() -> None:
    bicep = set(bicep_app_settings())
    exempt = not_set_in_azure()
    missing = sorted(app_settings() - bicep - exempt)
    assert missing == [], "set these in main.bicep (var appSettings) or document them in infra/README.md"
    assert sorted(exempt & bicep) == [], "documented as not set, but main.bicep sets them"
    assert sorted(exempt - app_settings()) == [], "documented exemptions the app no longer reads"


def test_every_bicep_app_setting_is_read_by_the_app_or_documented_for_the_host() -> None:
    unexplained = set(bicep_app_settings()) - app_settings() - host_settings()
    assert sorted(unexplained) == []
    assert sorted(host_settings() - set(bicep_app_settings())) == [], "documented but not set"


def test_no_flex_consumption_incompatible_settings() -> None:
    assert sorted(FLEX_FORBIDDEN_SETTINGS & set(bicep_app_settings())) == []


def test_connections_are_identity_based_in_azure() -> None:
    settings = bicep_app_settings()
    for connection in ("AzureWebJobsStorage", "WebPubSubConnectionString"):
        assert connection not in settings
        assert settings[f"{connection}__credential"] == "managedidentity"
        assert isinstance(settings[f"{connection}__clientId"], Deferred)  # the identity's client id
    assert "AzureWebJobsStorage__accountName" in settings
    assert "WebPubSubConnectionString__serviceUri" in settings


def test_notification_hubs_connection_string_is_a_key_vault_reference() -> None:
    value = bicep_app_settings()["NOTIFICATION_HUBS_CONNECTION_STRING"]
    assert isinstance(value, Deferred)
    assert value.source.startswith("'@Microsoft.KeyVault(SecretUri=${")
    secret = load("modules/key-vault.bicep").resources_of_type("Microsoft.KeyVault/vaults/secrets")
    assert len(secret) == 1
    assert "listKeys()" in text(object_property(secret[0].body, "properties.value"))


def test_no_app_setting_takes_a_secure_parameter() -> None:
    secure = {name for name, p in main().params.items() if any("secure()" in d for d in p.decorators)}
    source = text(main().variables["appSettings"].value)
    assert secure, "main.bicep has secure parameters (push credentials)"
    assert sorted(name for name in secure if re.search(rf"\b{name}\b", source)) == []


def test_bicep_defaults_are_the_app_defaults() -> None:
    settings = bicep_app_settings()
    for name, default in settings_module.DEFAULTS.items():
        if name in not_set_in_azure():
            continue
        assert settings[name] == default, name


def test_every_setting_is_in_local_settings_example() -> None:
    """Identity-based ``X__y`` names are the Azure form of connection ``X``, which is local (a string)."""
    values = json.loads((REPO / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    missing = sorted(
        name for name in app_settings() if name not in values and name.split("__")[0] not in values
    )
    assert missing == []


def not_in_configuration_table(markdown: str, names: set[str]) -> list[str]:
    """Names the "Configuration" table does not list.

    A row lists a setting by its name, or an ``X__y`` setting as ``__y`` in the row of ``X``.
    """
    rows = markdown_table(markdown, "Configuration")
    row_names = [
        {
            token
            for cell in row
            for code in re.findall(r"`([^`]+)`", cell)
            for token in re.split(r"[=\s]", code)
        }
        for row in rows
    ]
    assert row_names, "the markdown has a configuration table"

    def listed(name: str) -> bool:
        prefix, _, suffix = name.partition("__")
        return any(
            name in names or (suffix and prefix in names and f"__{suffix}" in names) for names in row_names
        )

    return sorted(name for name in names if not listed(name))


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert not_in_configuration_table(readme, app_settings()) == []


def test_configuration_table_check_finds_unlisted_settings() -> None:
    table = (
        "## Configuration\n\n| Setting | Meaning |\n|---|---|\n"
        "| `Conn` | identity: `Conn__accountName`, `__credential=managedidentity` |\n"
        "| `A_SETTING`, `B_SETTING` | two |\n\n## Next\n| `LATER` | not the table |\n"
    )
    names = {"Conn", "Conn__accountName", "Conn__credential", "A_SETTING", "B_SETTING"}
    assert not_in_configuration_table(table, names) == []
    assert not_in_configuration_table(table, {"Conn__clientId", "LATER", "C_SETTING", "A_SETTING"}) == [
        "C_SETTING",
        "Conn__clientId",
        "LATER",
    ]


# ---- queues, tables, hub ----------------------------------------------------------------------------


def test_the_bicep_creates_every_queue_the_code_uses() -> None:
    settings = bicep_app_settings()
    queues = module_param("storage", "queueNames")
    queue_settings = settings_read_with("queue_name")
    assert queue_settings, "shared/settings.py reads queue names"
    assert queue_trigger_settings() <= queue_settings
    for setting in queue_settings:
        assert settings[setting] in queues, setting
    for setting in queue_trigger_settings():
        assert f"{settings[setting]}-poison" in queues, (
            f"{setting}: the host moves failures to <queue>-poison"
        )


def test_the_bicep_creates_every_table_the_code_uses() -> None:
    settings = bicep_app_settings()
    tables = module_param("storage", "tableNames")
    table_settings = settings_read_with("table_name")
    assert table_settings, "shared/settings.py reads table names"
    assert sorted(settings[name] for name in table_settings) == sorted(tables)


@pytest.mark.parametrize(
    ("resource_type", "param"),
    [
        ("Microsoft.Storage/storageAccounts/queueServices/queues", "queueNames"),
        ("Microsoft.Storage/storageAccounts/tableServices/tables", "tableNames"),
    ],
)
def test_storage_module_creates_one_resource_per_name(resource_type: str, param: str) -> None:
    storage = load("modules/storage.bicep")
    (resource,) = storage.resources_of_type(resource_type)
    loop = resource.value
    assert loop is not None and loop.type == "for_statement"
    kinds = [child.type for child in loop.children]
    iterated = loop.children[kinds.index("in") + 1]  # [for <name> in <iterated>: {...}]
    assert text(iterated) == param


def test_function_app_gets_exactly_the_app_settings_object() -> None:
    assert text(object_property(main().modules["functionApp"].body, "params.appSettings")) == "appSettings"
    module = load("modules/function-app.bicep")
    (config,) = module.resources_of_type("Microsoft.Web/sites/config")
    assert module.evaluate(object_property(config.body, "name")) == "appsettings"
    assert text(object_property(config.body, "properties")) == "appSettings"


def hub_handler() -> tuple[dict[str, Any], Any]:
    """The enabled event handler of the hub module, and the value when disabled."""
    hub_module = load("modules/webpubsub-hub.bicep")
    (hub,) = hub_module.resources_of_type("Microsoft.SignalRService/webPubSub/hubs")
    handlers = object_property(hub.body, "properties.eventHandlers")
    assert handlers is not None and handlers.type == "ternary_expression"
    condition, enabled, disabled = (c for c in handlers.children if c.type not in ("?", ":"))
    assert text(condition) == "eventHandlerEnabled"
    (handler,) = hub_module.evaluate(enabled)
    return handler, hub_module.evaluate(disabled)


def test_hub_routes_exactly_the_events_the_app_has_triggers_for() -> None:
    handler, disabled = hub_handler()
    assert disabled == []
    assert set(handler["systemEvents"]) == webpubsub_events("system")
    assert "connect" not in handler["systemEvents"]  # no connect trigger: listing it rejects every client
    assert set(handler["userEventPattern"].split(",")) == webpubsub_events("user")
    assert handler["auth"] == {"type": "None"}


def test_hub_handler_url_is_the_extension_webhook_with_its_system_key() -> None:
    handler, _ = hub_handler()
    url = handler["urlTemplate"]
    assert isinstance(url, Deferred)  # built at deployment time from the app's host name and key
    assert url.source.startswith("'https://${functionApp.properties.defaultHostName}${webhookPath}?code=${")
    assert ".systemKeys.webpubsub_extension}" in url.source
    assert "listKeys('${functionApp.id}/host/default'" in url.source
    hub_module = load("modules/webpubsub-hub.bicep")
    assert hub_module.evaluate(hub_module.variables["webhookPath"].value) == "/runtime/webhooks/webpubsub"


def test_hub_name_and_handler_switch_come_from_main() -> None:
    assert module_param("webPubSubHub", "hubName") == bicep_app_settings()["WebPubSubHub"]
    assert text(object_property(main().modules["webPubSubHub"].body, "params.eventHandlerEnabled")) == (
        "webPubSubEventHandlerEnabled"
    )
    # First deployment: no handler (the system key does not exist yet).
    assert main().evaluate(main().params["webPubSubEventHandlerEnabled"].value) is False


# ---- roles ------------------------------------------------------------------------------------------


def roles_table() -> dict[str, dict[str, str]]:
    roles = load("modules/rbac.bicep").evaluate(load("modules/rbac.bicep").variables["roles"].value)
    assert isinstance(roles, dict) and roles
    return roles


def role_assignments() -> Iterator[tuple[BicepFile, Any]]:
    for path in all_bicep_files():
        bicep = load(path.relative_to(INFRA).as_posix())
        for resource in bicep.resources_of_type("Microsoft.Authorization/roleAssignments"):
            yield bicep, resource


def test_every_role_id_is_the_documented_built_in_role_it_claims() -> None:
    for key, role in roles_table().items():
        assert role["name"] in BUILT_IN_ROLES, f"{key}: {role['name']} is not a known built-in role"
        assert role["id"] == BUILT_IN_ROLES[role["name"]], f"{key}: wrong id for {role['name']}"


def test_role_ids_live_only_in_the_roles_table() -> None:
    roles_source = text(load("modules/rbac.bicep").variables["roles"].value)
    for path in all_bicep_files():
        source = path.read_text(encoding="utf-8")
        if path.name == "rbac.bicep":
            source = source.replace(roles_source, "")
        assert GUID.findall(source) == [], path.name


def test_the_app_identity_has_the_roles_it_needs_on_the_right_resources() -> None:
    roles = roles_table()
    granted: dict[str, str] = {}
    for bicep, assignment in role_assignments():
        definition = text(object_property(assignment.body, "properties.roleDefinitionId"))
        match = re.fullmatch(
            r"subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', roles\.(\w+)\.id\)",
            definition,
        )
        assert match, f"{assignment.name}: roleDefinitionId must come from the roles table"
        key = match.group(1)
        assert key in roles
        name_expression = text(object_property(assignment.body, "name"))
        assert f"roles.{key}.id" in name_expression, f"{assignment.name}: guid() name must include the role"
        if text(object_property(assignment.body, "properties.principalId")) != "appPrincipalId":
            continue
        principal_type = bicep.evaluate(object_property(assignment.body, "properties.principalType"))
        assert principal_type == "ServicePrincipal", assignment.name
        scope = bicep.of_kind("resource")[text(object_property(assignment.body, "scope"))]
        granted[roles[key]["name"]] = scope.type_string.split("@")[0]
    assert granted == APP_ROLES


# ---- outputs, parameters, azd ------------------------------------------------------------------------


def test_outputs_are_upper_snake_and_carry_no_secret() -> None:
    outputs = main().outputs
    assert outputs, "main.bicep has outputs for azd"
    for name in outputs:
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", name), name
    for path in all_bicep_files():
        bicep = load(path.relative_to(INFRA).as_posix())
        secure = {name for name, p in bicep.params.items() if any("secure()" in d for d in p.decorators)}
        for name, output in bicep.outputs.items():
            source = text(output.value) if output.value is not None else ""
            assert not re.search(r"\blist\w*\(", source), f"{path.name}: output {name} lists keys"
            assert not any(re.search(rf"\b{s}\b", source) for s in secure), f"{path.name}: output {name}"
    for name, output in outputs.items():
        assert "connectionstring" not in text(output.value).lower(), name


def test_parameters_file_matches_main() -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    given = document["parameters"]
    params = main().params
    assert sorted(set(given) - set(params)) == [], "parameters main.bicep does not declare"
    required = {name for name, p in params.items() if p.value is None}
    assert sorted(required - set(given)) == [], "parameters without default that azd must supply"
    for name in given:
        if any("secure()" in d for d in params[name].decorators):
            assert re.fullmatch(r"\$\{[A-Z0-9_]+=?\}", given[name]["value"]), (
                f"{name}: only from the environment"
            )


def test_azure_yaml_deploys_the_function_app_and_runs_the_handler_hook() -> None:
    document = (REPO / "azure.yaml").read_text(encoding="utf-8")
    assert re.search(r"^infra:\n(  .*\n)*  path: infra$", document, re.MULTILINE)
    service = re.search(r"^services:\n  (\w+):\n((    .*\n)*)", document, re.MULTILINE)
    assert service and "host: function" in service.group(2) and "language: python" in service.group(2)
    tags = text(
        object_property(
            load("modules/function-app.bicep").resources_of_type("Microsoft.Web/sites")[0].body, "tags"
        )
    )
    assert f"'azd-service-name': '{service.group(1)}'" in tags
    hook = re.search(r"postdeploy:\n(.*\n)*?\s+run: (\S+)", document)
    assert hook, "azure.yaml has a postdeploy hook"
    script = REPO / hook.group(2)
    assert script.is_file() and os.access(script, os.X_OK)
    source = script.read_text(encoding="utf-8")
    assert "webpubsub-hub.bicep" in source and "eventHandlerEnabled=true" in source
    assert main().outputs.keys() >= set(re.findall(r'"\$\{(\w+):\?', source)), "the hook's inputs are outputs"


# ---- security defaults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "resource_type", "path", "expected"),
    [
        ("storage", "Microsoft.Storage/storageAccounts", "properties.allowSharedKeyAccess", False),
        ("storage", "Microsoft.Storage/storageAccounts", "properties.allowBlobPublicAccess", False),
        ("storage", "Microsoft.Storage/storageAccounts", "properties.minimumTlsVersion", "TLS1_2"),
        ("storage", "Microsoft.Storage/storageAccounts", "properties.supportsHttpsTrafficOnly", True),
        (
            "storage",
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            "properties.publicAccess",
            "None",
        ),
        ("function-app", "Microsoft.Web/sites", "properties.httpsOnly", True),
        ("function-app", "Microsoft.Web/sites", "properties.siteConfig.minTlsVersion", "1.2"),
        ("function-app", "Microsoft.Web/sites", "properties.siteConfig.ftpsState", "Disabled"),
        ("function-app", "Microsoft.Web/sites", "properties.functionAppConfig.runtime.name", "python"),
        ("function-app", "Microsoft.Web/serverfarms", "sku.tier", "FlexConsumption"),
        ("webpubsub", "Microsoft.SignalRService/webPubSub", "properties.disableLocalAuth", True),
        (
            "webpubsub-hub",
            "Microsoft.SignalRService/webPubSub/hubs",
            "properties.anonymousConnectPolicy",
            "Deny",
        ),
        ("monitoring", "Microsoft.Insights/components", "properties.DisableLocalAuth", True),
        ("key-vault", "Microsoft.KeyVault/vaults", "properties.enableRbacAuthorization", True),
    ],
)
def test_secure_default(module: str, resource_type: str, path: str, expected: object) -> None:
    bicep = load(f"modules/{module}.bicep")
    resources = bicep.resources_of_type(resource_type)
    assert resources, resource_type
    for resource in resources:
        assert bicep.evaluate(object_property(resource.body, path)) == expected


def test_basic_auth_publishing_is_disabled() -> None:
    bicep = load("modules/function-app.bicep")
    policies = {
        bicep.evaluate(object_property(p.body, "name")): object_property(p.body, "properties.allow")
        for p in bicep.resources_of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    assert set(policies) == {"ftp", "scm"}
    assert bicep.evaluate(policies["ftp"]) is False  # FTP is never allowed
    assert bicep.evaluate(policies["scm"]) is False  # by default: the parameter defaults to false
    assert text(policies["scm"]) == "scmBasicAuthEnabled"
    assert main().evaluate(main().params["scmBasicAuthEnabled"].value) is False


def _project_python() -> str:
    """The one Python version pyproject.toml allows (``requires-python = "==3.13.*"``)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    match = re.fullmatch(r"==(\d+\.\d+)\.\*", project["project"]["requires-python"])
    assert match, "requires-python must name one minor version, e.g. ==3.13.*"
    return match.group(1)


def _allowed(bicep: BicepFile, param: str) -> list[str]:
    [allowed] = [d for d in bicep.params[param].decorators if d.startswith("@allowed(")]
    return re.findall(r"'([^']*)'", allowed)


def test_python_version_matches_requires_python_and_the_tools() -> None:
    version = _project_python()
    assert main().evaluate(main().params["pythonVersion"].value) == version
    assert _allowed(main(), "pythonVersion") == [version]
    module = load("modules/function-app.bicep")
    assert _allowed(module, "pythonVersion") == [version]
    site = module.resources_of_type("Microsoft.Web/sites")[0]
    runtime = object_property(site.body, "properties.functionAppConfig.runtime.version")
    assert text(runtime) == "pythonVersion"
    tools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assert tools["ruff"]["target-version"] == "py" + version.replace(".", "")
    assert tools["mypy"]["python_version"] == version
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^PYTHON_VERSION := {re.escape(version)}$", makefile, re.MULTILINE)


# ---- .funcignore --------------------------------------------------------------------------------------


def funcignored(name: str) -> bool:
    patterns = [
        line.strip().rstrip("/")
        for line in (REPO / ".funcignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


@pytest.mark.parametrize("name", ["function_app.py", "host.json", "requirements.txt", "notify", "shared"])
def test_funcignore_keeps_the_app(name: str) -> None:
    assert (REPO / name).exists()
    assert not funcignored(name)


@pytest.mark.parametrize(
    "name",
    ["local.settings.json", ".venv", "tests", "devstack", "infra", "node_modules", ".git", "__pycache__"],
)
def test_funcignore_leaves_out_what_is_not_the_app(name: str) -> None:
    assert funcignored(name)


def test_app_code_never_imports_what_funcignore_leaves_out() -> None:
    for package in ("notify", "shared"):
        for path in (REPO / package).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            assert not re.search(r"^\s*(from|import)\s+(devstack|tests)\b", source, re.MULTILINE), path


def test_string_literal_helper_keeps_interpolations() -> None:
    # The static reader itself: a Deferred keeps the source, a string keeps ${...} for string_literal.
    bicep = main()
    node = object_property(bicep.modules["storage"].body, "params.name")
    assert node is not None and string_literal(node) == "st${resourceToken}"
    assert isinstance(bicep.evaluate(node), Deferred)  # uniqueString() is deployment-time
