"""The FunctionRpc protobuf messages the Python runtime reads and builds, defined here with the descriptor
API.

``azure-functions-runtime`` does not ship protobuf classes: its caller (in Azure, the Python proxy worker)
injects a module with them as ``request.properties["protos"]``. This module is that module for the local host.
The messages, field names and field numbers are those of the published contract
(``azure-functions-language-worker-protobuf``, ``src/proto/FunctionRpc.proto``,
``shared/NullableTypes.proto``, ``identity/ClaimsIdentityRpc.proto``), limited to what the host and the
runtime exchange in-process: worker init, function metadata, function load, invocation and environment reload.
Nothing is serialised over a wire here, but the numbers are kept so the messages stay the contract's.

Every class is a generated protobuf message class, so the runtime's uses (``protos.BindingInfo.out``,
``protos.RpcHttpCookie.SameSite.Lax``, ``protos.TypedData(json=...)``) work as with protoc output.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, message_factory, timestamp_pb2

_WELL_KNOWN_FILES = (duration_pb2.DESCRIPTOR, timestamp_pb2.DESCRIPTOR)  # registered in the default pool

PACKAGE = "AzureFunctionsRpcMessages"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "sint64": _F.TYPE_SINT64,
    "double": _F.TYPE_DOUBLE,
}
_WELL_KNOWN = {"Duration": ".google.protobuf.Duration", "Timestamp": ".google.protobuf.Timestamp"}

# message name -> fields as (name, number, type, label) with label "" (singular), "repeated", "map:<key
# type>", "oneof:<name>" or "optional" (proto3 optional, a synthetic oneof). Types are scalars, messages or
# enums of this file (nested ones as "Outer.Inner"), or Duration/Timestamp.
_MESSAGES: dict[str, list[tuple[str, int, str, str]]] = {
    "StreamingMessage": [
        ("request_id", 1, "string", ""),
        ("start_stream", 20, "StartStream", "oneof:content"),
        ("worker_init_request", 17, "WorkerInitRequest", "oneof:content"),
        ("worker_init_response", 16, "WorkerInitResponse", "oneof:content"),
        ("function_load_request", 8, "FunctionLoadRequest", "oneof:content"),
        ("function_load_response", 9, "FunctionLoadResponse", "oneof:content"),
        ("invocation_request", 4, "InvocationRequest", "oneof:content"),
        ("invocation_response", 5, "InvocationResponse", "oneof:content"),
        ("rpc_log", 2, "RpcLog", "oneof:content"),
        ("function_environment_reload_request", 25, "FunctionEnvironmentReloadRequest", "oneof:content"),
        ("function_environment_reload_response", 26, "FunctionEnvironmentReloadResponse", "oneof:content"),
        ("functions_metadata_request", 29, "FunctionsMetadataRequest", "oneof:content"),
        ("function_metadata_response", 30, "FunctionMetadataResponse", "oneof:content"),
    ],
    "StartStream": [("worker_id", 2, "string", "")],
    "WorkerInitRequest": [
        ("host_version", 1, "string", ""),
        ("capabilities", 2, "string", "map:string"),
        ("log_categories", 3, "RpcLog.Level", "map:string"),
        ("worker_directory", 4, "string", ""),
        ("function_app_directory", 5, "string", ""),
    ],
    "WorkerInitResponse": [
        ("worker_version", 1, "string", ""),
        ("capabilities", 2, "string", "map:string"),
        ("result", 3, "StatusResult", ""),
        ("worker_metadata", 4, "WorkerMetadata", ""),
    ],
    "WorkerMetadata": [
        ("runtime_name", 1, "string", ""),
        ("runtime_version", 2, "string", ""),
        ("worker_version", 3, "string", ""),
        ("worker_bitness", 4, "string", ""),
        ("custom_properties", 5, "string", "map:string"),
    ],
    "StatusResult": [
        ("status", 4, "StatusResult.Status", ""),
        ("result", 1, "string", ""),
        ("exception", 2, "RpcException", ""),
        ("logs", 3, "RpcLog", "repeated"),
    ],
    "FunctionEnvironmentReloadRequest": [
        ("environment_variables", 1, "string", "map:string"),
        ("function_app_directory", 2, "string", ""),
    ],
    "FunctionEnvironmentReloadResponse": [
        ("worker_metadata", 1, "WorkerMetadata", ""),
        ("capabilities", 2, "string", "map:string"),
        ("result", 3, "StatusResult", ""),
    ],
    "FunctionLoadRequest": [
        ("function_id", 1, "string", ""),
        ("metadata", 2, "RpcFunctionMetadata", ""),
        ("managed_dependency_enabled", 3, "bool", ""),
    ],
    "FunctionLoadResponse": [
        ("function_id", 1, "string", ""),
        ("result", 2, "StatusResult", ""),
        ("is_dependency_downloaded", 3, "bool", ""),
    ],
    "RpcFunctionMetadata": [
        ("name", 4, "string", ""),
        ("directory", 1, "string", ""),
        ("script_file", 2, "string", ""),
        ("entry_point", 3, "string", ""),
        ("bindings", 6, "BindingInfo", "map:string"),
        ("is_proxy", 7, "bool", ""),
        ("status", 8, "StatusResult", ""),
        ("language", 9, "string", ""),
        ("raw_bindings", 10, "string", "repeated"),
        ("function_id", 13, "string", ""),
        ("managed_dependency_enabled", 14, "bool", ""),
        ("retry_options", 15, "RpcRetryOptions", ""),
        ("properties", 16, "string", "map:string"),
    ],
    "FunctionsMetadataRequest": [("function_app_directory", 1, "string", "")],
    "FunctionMetadataResponse": [
        ("function_metadata_results", 1, "RpcFunctionMetadata", "repeated"),
        ("result", 2, "StatusResult", ""),
        ("use_default_metadata_indexing", 3, "bool", ""),
    ],
    "InvocationRequest": [
        ("invocation_id", 1, "string", ""),
        ("function_id", 2, "string", ""),
        ("input_data", 3, "ParameterBinding", "repeated"),
        ("trigger_metadata", 4, "TypedData", "map:string"),
        ("trace_context", 5, "RpcTraceContext", ""),
        ("retry_context", 6, "RetryContext", ""),
    ],
    "RpcTraceContext": [
        ("trace_parent", 1, "string", ""),
        ("trace_state", 2, "string", ""),
        ("attributes", 3, "string", "map:string"),
    ],
    "RetryContext": [
        ("retry_count", 1, "int32", ""),
        ("max_retry_count", 2, "int32", ""),
        ("exception", 3, "RpcException", ""),
    ],
    "InvocationResponse": [
        ("invocation_id", 1, "string", ""),
        ("output_data", 2, "ParameterBinding", "repeated"),
        ("return_value", 4, "TypedData", ""),
        ("result", 3, "StatusResult", ""),
    ],
    "TypedData": [
        ("string", 1, "string", "oneof:data"),
        ("json", 2, "string", "oneof:data"),
        ("bytes", 3, "bytes", "oneof:data"),
        ("stream", 4, "bytes", "oneof:data"),
        ("http", 5, "RpcHttp", "oneof:data"),
        ("int", 6, "sint64", "oneof:data"),
        ("double", 7, "double", "oneof:data"),
        ("collection_bytes", 8, "CollectionBytes", "oneof:data"),
        ("collection_string", 9, "CollectionString", "oneof:data"),
        ("collection_double", 10, "CollectionDouble", "oneof:data"),
        ("collection_sint64", 11, "CollectionSInt64", "oneof:data"),
        ("model_binding_data", 12, "ModelBindingData", "oneof:data"),
        ("collection_model_binding_data", 13, "CollectionModelBindingData", "oneof:data"),
    ],
    "RpcSharedMemory": [
        ("name", 1, "string", ""),
        ("offset", 2, "int64", ""),
        ("count", 3, "int64", ""),
        ("type", 4, "RpcDataType", ""),
    ],
    "CollectionString": [("string", 1, "string", "repeated")],
    "CollectionBytes": [("bytes", 1, "bytes", "repeated")],
    "CollectionDouble": [("double", 1, "double", "repeated")],
    "CollectionSInt64": [("sint64", 1, "sint64", "repeated")],
    "ParameterBinding": [
        ("name", 1, "string", ""),
        ("data", 2, "TypedData", "oneof:rpc_data"),
        ("rpc_shared_memory", 3, "RpcSharedMemory", "oneof:rpc_data"),
    ],
    "BindingInfo": [
        ("type", 2, "string", ""),
        ("direction", 3, "BindingInfo.Direction", ""),
        ("data_type", 4, "BindingInfo.DataType", ""),
        ("properties", 5, "string", "map:string"),
    ],
    "RpcLog": [
        ("invocation_id", 1, "string", ""),
        ("category", 2, "string", ""),
        ("level", 3, "RpcLog.Level", ""),
        ("message", 4, "string", ""),
        ("event_id", 5, "string", ""),
        ("exception", 6, "RpcException", ""),
        ("properties", 7, "string", ""),
        ("log_category", 8, "RpcLog.RpcLogCategory", ""),
        ("propertiesMap", 9, "TypedData", "map:string"),
    ],
    "RpcException": [
        ("source", 3, "string", ""),
        ("stack_trace", 1, "string", ""),
        ("message", 2, "string", ""),
        ("is_user_exception", 4, "bool", ""),
        ("type", 5, "string", ""),
    ],
    "RpcHttpCookie": [
        ("name", 1, "string", ""),
        ("value", 2, "string", ""),
        ("domain", 3, "NullableString", ""),
        ("path", 4, "NullableString", ""),
        ("expires", 5, "NullableTimestamp", ""),
        ("secure", 6, "NullableBool", ""),
        ("http_only", 7, "NullableBool", ""),
        ("same_site", 8, "RpcHttpCookie.SameSite", ""),
        ("max_age", 9, "NullableDouble", ""),
    ],
    "RpcHttp": [
        ("method", 1, "string", ""),
        ("url", 2, "string", ""),
        ("headers", 3, "string", "map:string"),
        ("body", 4, "TypedData", ""),
        ("params", 10, "string", "map:string"),
        ("status_code", 12, "string", ""),
        ("query", 15, "string", "map:string"),
        ("enable_content_negotiation", 16, "bool", ""),
        ("rawBody", 17, "TypedData", ""),
        ("identities", 18, "RpcClaimsIdentity", "repeated"),
        ("cookies", 19, "RpcHttpCookie", "repeated"),
        ("nullable_headers", 20, "NullableString", "map:string"),
        ("nullable_params", 21, "NullableString", "map:string"),
        ("nullable_query", 22, "NullableString", "map:string"),
    ],
    "ModelBindingData": [
        ("version", 1, "string", ""),
        ("source", 2, "string", ""),
        ("content_type", 3, "string", ""),
        ("content", 4, "bytes", ""),
    ],
    "CollectionModelBindingData": [("model_binding_data", 1, "ModelBindingData", "repeated")],
    "RpcRetryOptions": [
        ("max_retry_count", 2, "int32", ""),
        ("delay_interval", 3, "Duration", ""),
        ("minimum_interval", 4, "Duration", ""),
        ("maximum_interval", 5, "Duration", ""),
        ("retry_strategy", 6, "RpcRetryOptions.RetryStrategy", ""),
    ],
    "NullableString": [("value", 1, "string", "oneof:string")],
    "NullableDouble": [("value", 1, "double", "oneof:double")],
    "NullableBool": [("value", 1, "bool", "oneof:bool")],
    "NullableTimestamp": [("value", 1, "Timestamp", "oneof:timestamp")],
    "RpcClaimsIdentity": [
        ("authentication_type", 1, "string", "optional"),
        ("name_claim_type", 2, "string", "optional"),
        ("role_claim_type", 3, "string", "optional"),
        ("claims", 4, "RpcClaim", "repeated"),
    ],
    "RpcClaim": [("value", 1, "string", ""), ("type", 2, "string", "")],
}

# enum name ("Outer.Inner" when nested in a message) -> values in declaration order
_ENUMS: dict[str, list[tuple[str, int]]] = {
    "StatusResult.Status": [("Failure", 0), ("Success", 1), ("Cancelled", 2)],
    "BindingInfo.Direction": [("in", 0), ("out", 1), ("inout", 2)],
    "BindingInfo.DataType": [("undefined", 0), ("string", 1), ("binary", 2), ("stream", 3)],
    "RpcLog.Level": [
        ("Trace", 0),
        ("Debug", 1),
        ("Information", 2),
        ("Warning", 3),
        ("Error", 4),
        ("Critical", 5),
        ("None", 6),
    ],
    "RpcLog.RpcLogCategory": [("User", 0), ("System", 1), ("CustomMetric", 2)],
    "RpcHttpCookie.SameSite": [("None", 0), ("Lax", 1), ("Strict", 2), ("ExplicitNone", 3)],
    "RpcRetryOptions.RetryStrategy": [("exponential_backoff", 0), ("fixed_delay", 1)],
    "RpcDataType": [
        ("unknown", 0),
        ("string", 1),
        ("json", 2),
        ("bytes", 3),
        ("stream", 4),
        ("http", 5),
        ("int", 6),
        ("double", 7),
        ("collection_bytes", 8),
        ("collection_string", 9),
        ("collection_double", 10),
        ("collection_sint64", 11),
    ],
}


def _add_field(
    message: descriptor_pb2.DescriptorProto, name: str, number: int, type_name: str, label: str
) -> None:
    field = message.field.add(name=name, number=number, label=_F.LABEL_OPTIONAL)
    if label == "repeated":
        field.label = _F.LABEL_REPEATED
    if label.startswith("map:"):
        # A map is a repeated nested "<Name>Entry" message with map_entry set (how protoc represents it).
        entry = message.nested_type.add(name="".join(p.title() for p in name.split("_")) + "Entry")
        entry.options.map_entry = True
        _add_field(entry, "key", 1, label[4:], "")
        _add_field(entry, "value", 2, type_name, "")
        field.label = _F.LABEL_REPEATED
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{message.name}.{entry.name}"
        return
    if label.startswith("oneof:") or label == "optional":
        oneof = label[6:] if label != "optional" else f"_{name}"
        names = [o.name for o in message.oneof_decl]
        if oneof not in names:
            message.oneof_decl.add(name=oneof)
            names.append(oneof)
        field.oneof_index = names.index(oneof)
        field.proto3_optional = label == "optional"
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
    elif type_name in _WELL_KNOWN:
        field.type = _F.TYPE_MESSAGE
        field.type_name = _WELL_KNOWN[type_name]
    elif type_name in _ENUMS:
        field.type = _F.TYPE_ENUM
        field.type_name = f".{PACKAGE}.{type_name}"
    else:
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{type_name}"


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="devstack/FunctionRpc.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/duration.proto", "google/protobuf/timestamp.proto"],
    )
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        messages[name] = message
        for field in fields:
            _add_field(message, *field)
    for name, values in _ENUMS.items():
        outer, _, inner = name.rpartition(".")
        enum = messages[outer].enum_type.add(name=inner) if outer else file.enum_type.add(name=name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    return file


def _build() -> dict[str, Any]:
    # The default pool already holds Duration and Timestamp (imported above), so their Python classes, with
    # the timedelta/datetime conversions the runtime relies on, are the usual ones.
    pool = descriptor_pool.Default()
    file = _file_descriptor()
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in _MESSAGES
    }


_CLASSES = _build()

# The module's attributes are the message classes (typed Any: their fields are only known at run time).
StreamingMessage: Any = _CLASSES["StreamingMessage"]
StartStream: Any = _CLASSES["StartStream"]
WorkerInitRequest: Any = _CLASSES["WorkerInitRequest"]
WorkerInitResponse: Any = _CLASSES["WorkerInitResponse"]
WorkerMetadata: Any = _CLASSES["WorkerMetadata"]
StatusResult: Any = _CLASSES["StatusResult"]
FunctionEnvironmentReloadRequest: Any = _CLASSES["FunctionEnvironmentReloadRequest"]
FunctionEnvironmentReloadResponse: Any = _CLASSES["FunctionEnvironmentReloadResponse"]
FunctionLoadRequest: Any = _CLASSES["FunctionLoadRequest"]
FunctionLoadResponse: Any = _CLASSES["FunctionLoadResponse"]
RpcFunctionMetadata: Any = _CLASSES["RpcFunctionMetadata"]
FunctionsMetadataRequest: Any = _CLASSES["FunctionsMetadataRequest"]
FunctionMetadataResponse: Any = _CLASSES["FunctionMetadataResponse"]
InvocationRequest: Any = _CLASSES["InvocationRequest"]
RpcTraceContext: Any = _CLASSES["RpcTraceContext"]
RetryContext: Any = _CLASSES["RetryContext"]
InvocationResponse: Any = _CLASSES["InvocationResponse"]
TypedData: Any = _CLASSES["TypedData"]
RpcSharedMemory: Any = _CLASSES["RpcSharedMemory"]
CollectionString: Any = _CLASSES["CollectionString"]
CollectionBytes: Any = _CLASSES["CollectionBytes"]
CollectionDouble: Any = _CLASSES["CollectionDouble"]
CollectionSInt64: Any = _CLASSES["CollectionSInt64"]
ParameterBinding: Any = _CLASSES["ParameterBinding"]
BindingInfo: Any = _CLASSES["BindingInfo"]
RpcLog: Any = _CLASSES["RpcLog"]
RpcException: Any = _CLASSES["RpcException"]
RpcHttpCookie: Any = _CLASSES["RpcHttpCookie"]
RpcHttp: Any = _CLASSES["RpcHttp"]
ModelBindingData: Any = _CLASSES["ModelBindingData"]
CollectionModelBindingData: Any = _CLASSES["CollectionModelBindingData"]
RpcRetryOptions: Any = _CLASSES["RpcRetryOptions"]
NullableString: Any = _CLASSES["NullableString"]
NullableDouble: Any = _CLASSES["NullableDouble"]
NullableBool: Any = _CLASSES["NullableBool"]
NullableTimestamp: Any = _CLASSES["NullableTimestamp"]
RpcClaimsIdentity: Any = _CLASSES["RpcClaimsIdentity"]
RpcClaim: Any = _CLASSES["RpcClaim"]
Timestamp: Any = timestamp_pb2.Timestamp
