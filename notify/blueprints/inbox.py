"""The signed-in user's inbox over HTTP (``/api/inbox…``) and the retention sweep timer.

Every route authenticates like negotiate and acts on the caller's own partition only: an id of another
user's notification is looked up in the caller's partition, where it does not exist (404, as for any
unknown id). Query parameters are checked strictly: an unknown one, a malformed cursor, a limit out of
range or an unknown filter value is a 400 naming the parameter.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any, Protocol

import azure.functions as func

from notify.blueprints.notifier import get_notifier
from notify.inbox import DEFAULT_CHANGES_LIMIT, DEFAULT_PAGE_LIMIT, MAX_LIMIT, Inbox, tell
from notify.inbox_model import Mark, StatusFilter
from notify.inbox_store import InboxStore
from notify.message import MAX_TYPE_LENGTH
from notify.realtime import get_realtime_sender
from shared.auth import Principal, get_authenticator
from shared.clients import get_table_client
from shared.errors import BadRequestError
from shared.http import handle_errors, json_response
from shared.once import process_wide
from shared.settings import get_settings

bp = func.Blueprint()  # type: ignore[no-untyped-call]

# Answers are the user's own data: never cached on the way.
NO_STORE = {"Cache-Control": "no-store"}
#: The marks of ``POST /api/inbox/items/{id}/{action}`` (delete is ``DELETE /api/inbox/items/{id}``).
ITEM_ACTIONS = {
    "read": Mark.READ,
    "unread": Mark.UNREAD,
    "seen": Mark.SEEN,
    "archive": Mark.ARCHIVE,
    "unarchive": Mark.UNARCHIVE,
}


class RequestAuthenticator(Protocol):
    """Anything that turns request headers into a Principal (shared.auth.Authenticator)."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Return the caller or raise UnauthorizedError."""
        ...


@process_wide
def get_inbox() -> Inbox:
    """The process-wide Inbox built from the settings, announcing through Web PubSub."""
    settings = get_settings()
    return Inbox(
        InboxStore(get_table_client(settings.deliveries_table)),
        envelopes=get_realtime_sender(),
        retention_days=settings.inbox_retention_days,
        on_read_or_archived=tell(get_notifier()),  # retracts a pushed notification once it is read
    )


# ---- parameters -------------------------------------------------------------------------------------------


def _query(req: func.HttpRequest, allowed: tuple[str, ...]) -> dict[str, str]:
    params = dict(req.params)
    for name in params:
        if name not in allowed:
            expected = ", ".join(allowed) if allowed else "none"
            raise BadRequestError(f"unknown query parameter {name!r}; expected {expected}", field=name)
    return params


def _limit(params: Mapping[str, str], default: int) -> int:
    raw = params.get("limit")
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequestError(f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return int(raw)


def _type(params: Mapping[str, str]) -> str | None:
    value = params.get("type")
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_TYPE_LENGTH:
        raise BadRequestError(f"type must be 1 to {MAX_TYPE_LENGTH} characters", field="type")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise BadRequestError("type must not contain control characters or lone surrogates", field="type")
    return value


def _status(params: Mapping[str, str]) -> StatusFilter | None:
    value = params.get("status")
    if value is None:
        return None
    try:
        return StatusFilter(value)
    except ValueError:
        allowed = ", ".join(s.value for s in StatusFilter)
        raise BadRequestError(f"status must be one of {allowed}", field="status") from None


def _cursor(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not value:
        raise BadRequestError(f"{name} must not be empty", field=name)
    return value


def _answer(body: Any) -> func.HttpResponse:
    return json_response(body, headers=NO_STORE)


# ---- handlers (called by the triggers, and by tests with their own authenticator and inbox) -----------


@handle_errors
def list_response(req: func.HttpRequest, auth: RequestAuthenticator, inbox: Inbox) -> func.HttpResponse:
    """``GET /api/inbox?limit=&before=&type=&status=``: one page, newest first."""
    user = auth.authenticate(req.headers).user_id
    params = _query(req, ("limit", "before", "type", "status"))
    page = inbox.page(
        user,
        limit=_limit(params, DEFAULT_PAGE_LIMIT),
        before=_cursor(params, "before"),
        type=_type(params),
        status=_status(params),
    )
    return _answer(page)


@handle_errors
def changes_response(req: func.HttpRequest, auth: RequestAuthenticator, inbox: Inbox) -> func.HttpResponse:
    """``GET /api/inbox/changes?after=&limit=``: what was created or changed since the cursor."""
    user = auth.authenticate(req.headers).user_id
    params = _query(req, ("after", "limit"))
    return _answer(inbox.changes(user, _cursor(params, "after"), _limit(params, DEFAULT_CHANGES_LIMIT)))


@handle_errors
def counts_response(req: func.HttpRequest, auth: RequestAuthenticator, inbox: Inbox) -> func.HttpResponse:
    """``GET /api/inbox/counts``: unread, unseen and total."""
    user = auth.authenticate(req.headers).user_id
    _query(req, ())
    return _answer(inbox.counts(user).to_json())


@handle_errors
def mark_all_response(
    req: func.HttpRequest, auth: RequestAuthenticator, inbox: Inbox, mark: Mark
) -> func.HttpResponse:
    """``POST /api/inbox/read-all`` and ``/seen-all`` (``?type=&resume=``)."""
    user = auth.authenticate(req.headers).user_id
    params = _query(req, ("type", "resume"))
    return _answer(inbox.mark_all(user, mark, _type(params), _cursor(params, "resume")))


@handle_errors
def item_response(req: func.HttpRequest, auth: RequestAuthenticator, inbox: Inbox) -> func.HttpResponse:
    """``GET /api/inbox/items/{notificationId}``."""
    user = auth.authenticate(req.headers).user_id
    _query(req, ())
    return _answer(inbox.get(user, req.route_params.get("notificationId", "")))


@handle_errors
def mark_response(req: func.HttpRequest, auth: RequestAuthenticator, inbox: Inbox) -> func.HttpResponse:
    """``POST /api/inbox/items/{notificationId}/{action}``: read, unread, seen, archive, unarchive."""
    user = auth.authenticate(req.headers).user_id
    _query(req, ())
    action = req.route_params.get("action", "")
    mark = ITEM_ACTIONS.get(action)
    if mark is None:
        allowed = ", ".join(ITEM_ACTIONS)
        raise BadRequestError(f"unknown action {action[:32]!r}; expected {allowed}", field="action")
    return _answer(inbox.mark(user, req.route_params.get("notificationId", ""), mark))


@handle_errors
def delete_response(req: func.HttpRequest, auth: RequestAuthenticator, inbox: Inbox) -> func.HttpResponse:
    """``DELETE /api/inbox/items/{notificationId}``: 204, also when already deleted."""
    user = auth.authenticate(req.headers).user_id
    _query(req, ())
    inbox.mark(user, req.route_params.get("notificationId", ""), Mark.DELETE)
    return func.HttpResponse(status_code=204, headers=NO_STORE)


# ---- the triggers -----------------------------------------------------------------------------------------


@bp.route(route="inbox", methods=["GET"])
@handle_errors
def inbox_list(req: func.HttpRequest) -> func.HttpResponse:
    """List the caller's inbox."""
    return list_response(req, get_authenticator(), get_inbox())


@bp.route(route="inbox/changes", methods=["GET"])
@handle_errors
def inbox_changes(req: func.HttpRequest) -> func.HttpResponse:
    """The caller's inbox changes since a cursor."""
    return changes_response(req, get_authenticator(), get_inbox())


@bp.route(route="inbox/counts", methods=["GET"])
@handle_errors
def inbox_counts(req: func.HttpRequest) -> func.HttpResponse:
    """The caller's unread, unseen and total counts."""
    return counts_response(req, get_authenticator(), get_inbox())


@bp.route(route="inbox/read-all", methods=["POST"])
@handle_errors
def inbox_read_all(req: func.HttpRequest) -> func.HttpResponse:
    """Mark every item read (bounded, resumable)."""
    return mark_all_response(req, get_authenticator(), get_inbox(), Mark.READ)


@bp.route(route="inbox/seen-all", methods=["POST"])
@handle_errors
def inbox_seen_all(req: func.HttpRequest) -> func.HttpResponse:
    """Mark every item seen (bounded, resumable)."""
    return mark_all_response(req, get_authenticator(), get_inbox(), Mark.SEEN)


@bp.route(route="inbox/items/{notificationId}", methods=["GET"])
@handle_errors
def inbox_item(req: func.HttpRequest) -> func.HttpResponse:
    """One item of the caller's inbox."""
    return item_response(req, get_authenticator(), get_inbox())


@bp.route(route="inbox/items/{notificationId}/{action}", methods=["POST"])
@handle_errors
def inbox_mark(req: func.HttpRequest) -> func.HttpResponse:
    """Mark one item of the caller's inbox."""
    return mark_response(req, get_authenticator(), get_inbox())


@bp.route(route="inbox/items/{notificationId}", methods=["DELETE"])
@handle_errors
def inbox_delete(req: func.HttpRequest) -> func.HttpResponse:
    """Delete one item of the caller's inbox."""
    return delete_response(req, get_authenticator(), get_inbox())


@bp.timer_trigger(arg_name="timer", schedule="%INBOX_SWEEP_SCHEDULE%", run_on_startup=False)
def inbox_sweep(timer: func.TimerRequest) -> None:
    """Remove inbox items (and delivery records) older than INBOX_RETENTION_DAYS."""
    get_inbox().sweep()
