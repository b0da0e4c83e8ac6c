"""The accounts service: owns the accounts, publishes what happens to them, serves HTTP.

It is the only writer of account state. Everything that follows a change (freezing cards,
emails, analytics, onboarding) happens downstream in consumer groups, which is why
``POST /accounts/{id}/ban`` answers 202 Accepted at once instead of waiting for them.

Run it on its own (the consumers run elsewhere, e.g. with ``tidings run``)::

    python -m examples.accounts --port 8000
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tidings import App, Event
from tidings.outbox import Outbox

from .events import AccountBanned, AccountClosed, AccountOpened, account_events

log = logging.getLogger("accounts.service")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL,          -- open | banned | closed
    opened_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    email: str
    status: str
    opened_at: str
    changed_at: str


@dataclass(frozen=True)
class Change:
    """An account after a change, and the id of the event that announced it."""

    account: Account
    event_id: str


class AccountNotFound(LookupError):
    pass


class InvalidTransition(ValueError):
    """E.g. banning a closed account: the request conflicts with the account's state."""


class AccountsService:
    """Opens, bans and closes accounts; each change is published to `account-events`.

    Thread-safe (the HTTP server calls it from many threads). Accounts live in the
    database behind `engine` (SQLite by default, PostgreSQL with ACCOUNTS_DATABASE_URL),
    and every change publishes its event through `outbox`, in the same transaction.
    """

    def __init__(self, app: App, *, engine: Engine, outbox: Outbox) -> None:
        self.app = app
        self.engine = engine
        self.outbox = outbox
        with engine.begin() as conn:
            conn.execute(text(_SCHEMA))
        self._lock = threading.Lock()

    def open(self, name: str, email: str) -> Change:
        account_id = uuid.uuid4().hex[:12]
        now = _now()
        with self._transaction() as s:
            s.execute(
                text("INSERT INTO accounts VALUES (:id, :name, :email, 'open', :now, :now)"),
                {"id": account_id, "name": name, "email": email, "now": now},
            )
            opened = AccountOpened(account_id=account_id, name=name, email=email)
            event_id = self._publish(s, account_id, opened)
        return Change(self.get(account_id), event_id)

    def ban(self, account_id: str, reason: str, banned_by: str = "system") -> Change:
        banned = AccountBanned(account_id=account_id, reason=reason, banned_by=banned_by)
        return self._transition(account_id, {"open"}, "banned", banned)

    def close(self, account_id: str) -> Change:
        return self._transition(
            account_id, {"open", "banned"}, "closed", AccountClosed(account_id=account_id)
        )

    def get(self, account_id: str) -> Account:
        with Session(self.engine) as s:
            return self._get(s, account_id)

    def _transition(self, account_id: str, allowed: set[str], status: str, event: Event) -> Change:
        with self._transaction() as s:
            current = self._get(s, account_id).status
            if current not in allowed:
                raise InvalidTransition(f"account {account_id} is {current}; cannot be {status}")
            s.execute(
                text("UPDATE accounts SET status = :status, changed_at = :now WHERE id = :id"),
                {"status": status, "now": _now(), "id": account_id},
            )
            event_id = self._publish(s, account_id, event)
        return Change(self.get(account_id), event_id)

    def _publish(self, s: Session, account_id: str, event: Event) -> str:
        # Through the outbox: the event is stored in this transaction and relayed to the
        # broker after it commits (by `tidings run`, or `tidings relay`). A crash before
        # the commit announces nothing; after it, the event is sent however the process died.
        #
        # The key is the account id: one account's events land in one partition, so every
        # group sees them in the order they happened.
        return self.outbox.publish(s, account_events, event, key=account_id)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Session]:
        # The lock keeps read-then-write transitions of this process atomic on SQLite too.
        with self._lock, Session(self.engine) as s, s.begin():
            yield s

    @staticmethod
    def _get(s: Session, account_id: str) -> Account:
        row = s.execute(text("SELECT * FROM accounts WHERE id = :id"), {"id": account_id})
        found = row.mappings().first()
        if found is None:
            raise AccountNotFound(account_id)
        return Account(**found)

    def close_store(self) -> None:
        self.engine.dispose()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- the HTTP API -----------------------------------------------------------------------------


class OpenAccount(BaseModel):
    name: str
    email: str


class BanAccount(BaseModel):
    reason: str = "unspecified"
    banned_by: str = "api"


_M = TypeVar("_M", bound=BaseModel)
_ACCOUNT = re.compile(r"^/accounts/(?P<id>[A-Za-z0-9_-]+)(?P<action>/ban|/close)?$")


class _Handler(BaseHTTPRequestHandler):
    server: AccountsHTTPServer

    def do_GET(self) -> None:
        match = _ACCOUNT.match(self.path)
        if match is None or match["action"]:
            return self._reply(HTTPStatus.NOT_FOUND, {"error": "no such resource"})
        self._call(lambda: asdict(self.server.service.get(match["id"])), HTTPStatus.OK)

    def do_POST(self) -> None:
        service = self.server.service
        if self.path == "/accounts":
            body = self._body(OpenAccount)
            if body is not None:
                self._call(lambda: _change(service.open(body.name, body.email)), 201)
            return
        match = _ACCOUNT.match(self.path)
        if match is None or not match["action"]:
            return self._reply(HTTPStatus.NOT_FOUND, {"error": "no such resource"})
        account_id = match["id"]
        if match["action"] == "/ban":
            ban = self._body(BanAccount)
            if ban is not None:
                # 202: the ban is recorded and announced; freezing cards and settling take
                # seconds and happen in the payments group, not in this request.
                self._call(lambda: _change(service.ban(account_id, ban.reason, ban.banned_by)), 202)
        else:
            self._call(lambda: _change(service.close(account_id)), 202)

    def _body(self, model: type[_M]) -> _M | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": exc.errors(include_url=False)})
            return None

    def _call(self, action: Any, status: int) -> None:
        try:
            result = action()
        except AccountNotFound as exc:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no account {exc}"})
        except InvalidTransition as exc:
            self._reply(HTTPStatus.CONFLICT, {"error": str(exc)})
        else:
            self._reply(status, result)

    def _reply(self, status: int, payload: object) -> None:
        body = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def _change(change: Change) -> dict[str, object]:
    return {**asdict(change.account), "event_id": change.event_id}


class AccountsHTTPServer(ThreadingHTTPServer):
    """The JSON API over an AccountsService; `port=0` picks a free port (see server_port)."""

    daemon_threads = True

    def __init__(self, service: AccountsService, host: str = "127.0.0.1", port: int = 8000):
        super().__init__((host, port), _Handler)
        self.service = service
