"""The layout of a user's partition in ``DEVICES_TABLE``, where one query finds all the notifier needs.

Partition ``user:<user key>`` holds:

* device-index rows, RowKey = installationId (written only by :mod:`notify.devices`, under its lease);
* connection rows, RowKey ``~connection:<connectionId>`` (:mod:`notify.presence`);
* the preferences row, RowKey ``~preferences`` (:mod:`notify.user_state`).

Every row key other than a device's starts with ``~``, which sorts after every character an installation
id may contain (letters, digits, ``-``, ``_``): device rows are exactly the rows below ``~``, and each kind
of row is one row-key range.
"""

from __future__ import annotations

from shared.user_keys import user_key

OWN_ROW_PREFIX = "~"
CONNECTION_PREFIX = "~connection:"
PREFERENCES_ROW = "~preferences"
# The first key after every "~connection:..." key (";" follows ":").
_CONNECTION_END = "~connection;"


def user_partition(user_id: str) -> str:
    """The user's partition (the one ``notify.devices`` keeps its index in)."""
    return f"user:{user_key(user_id)}"


def connection_row_key(connection_id: str) -> str:
    """The row key of a connection's row."""
    return CONNECTION_PREFIX + connection_id


def connection_id_of(row_key: str) -> str | None:
    """The connection id of a connection row's key, or None for another kind of row."""
    return row_key[len(CONNECTION_PREFIX):] if row_key.startswith(CONNECTION_PREFIX) else None


def is_device_row(row_key: str) -> bool:
    """True for a device-index row."""
    return not row_key.startswith(OWN_ROW_PREFIX)


#: A filter on the connection rows (parameters ``lo`` and ``hi``: :data:`CONNECTION_RANGE`).
CONNECTION_ROWS = "RowKey ge @lo and RowKey lt @hi"
CONNECTION_RANGE = {"lo": CONNECTION_PREFIX, "hi": _CONNECTION_END}


def user_connections_query(user_id: str) -> tuple[str, dict[str, str]]:
    """(filter, parameters) of a query for the user's connection rows."""
    return f"PartitionKey eq @pk and {CONNECTION_ROWS}", {"pk": user_partition(user_id), **CONNECTION_RANGE}
