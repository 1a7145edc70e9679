"""Incidents in the browser: open and past incidents, their timeline, acknowledge and resolve.

The rules are the incident store's own, the same ones Slack's buttons follow:
the first acknowledgement takes ownership, and only the owner (or an admin)
may resolve, with a note. A web account with the admin role counts as an admin.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from alerts.incidents import Event, Incident, IncidentStore
from listener.errors import IncidentError
from listener.web.accounts import User, can
from listener.web.render import page
from listener.web.security import Csrf, Reader

__all__ = ["IncidentDesk", "router"]

router = APIRouter()


class IncidentDesk:
    """The incident store behind a lock: its one SQLite connection is shared by the server's threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._store: IncidentStore | None = None

    def _open(self) -> IncidentStore:
        if self._store is None:
            self._store = IncidentStore(self.path)
        return self._store

    def find(self, state: str | None, limit: int = 100) -> list[Incident]:
        with self._lock:
            return self._open().find(state=state, limit=limit)

    def detail(self, incident_id: int) -> tuple[Incident, list[Event]]:
        with self._lock:
            store = self._open()
            incident = store.get(incident_id)
            if incident is None:
                raise HTTPException(404, "no such incident")
            return incident, store.events(incident_id)

    def stats(self, by: Literal["brand", "responder"]) -> list[Any]:
        with self._lock:
            return self._open().stats(by)

    def act(self, incident_id: int, user: User, action: str, note: str) -> Incident:
        """Acknowledge, resolve or note; a broken rule comes back as 409 with the store's reason."""
        if not can(user, "incidents"):
            raise HTTPException(403, f"your role ({user.role}) may not work incidents")
        now = time.time()
        admins = {user.name} if user.role == "admin" else set()
        with self._lock:
            store = self._open()
            try:
                if action == "ack":
                    return store.acknowledge(incident_id, user.name, now)
                if action == "resolve":
                    return store.resolve(incident_id, user.name, note, now, admins=admins)
                if action == "note" and note.strip():
                    store.add_event(incident_id, now, "note", user.name, note.strip()[:4000])
                    found = store.get(incident_id)
                    assert found is not None
                    return found
            except IncidentError as exc:
                status = 404 if str(exc).startswith("no incident") else 409
                raise HTTPException(status, str(exc)) from None
        raise HTTPException(400, "unknown action, or an empty note")

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _when(epoch: float | None) -> str:
    return "" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _json(incident: Incident) -> dict[str, Any]:
    return dict(vars(incident)) | {"owner": incident.owner}


class ActionIn(BaseModel):
    note: str = ""


@router.get("/api/incidents", tags=["incidents"], summary="Open or past incidents, newest first")
def api_list(
    request: Request, _user: Reader, state: Literal["open", "acknowledged", "resolved"] | None = None
) -> list[dict[str, Any]]:
    return [_json(i) for i in request.app.state.incidents.find(state)]


@router.get("/api/incidents/stats", tags=["incidents"], summary="Response times by brand and responder")
def api_stats(request: Request, _user: Reader) -> dict[str, Any]:
    desk: IncidentDesk = request.app.state.incidents
    return {by: [vars(s) for s in desk.stats(by)] for by in ("brand", "responder")}


@router.get("/api/incidents/{incident_id}", tags=["incidents"], summary="An incident and its timeline")
def api_get(request: Request, _user: Reader, incident_id: int) -> dict[str, Any]:
    incident, events = request.app.state.incidents.detail(incident_id)
    return _json(incident) | {"events": [vars(e) for e in events]}


@router.post(
    "/api/incidents/{incident_id}/{action}",
    tags=["incidents"],
    summary="Acknowledge (ack), resolve (with a note) or add a note",
    dependencies=Csrf,
)
def api_act(
    request: Request,
    user: Reader,
    incident_id: int,
    action: Literal["ack", "resolve", "note"],
    body: ActionIn,
) -> dict[str, Any]:
    return _json(request.app.state.incidents.act(incident_id, user, action, body.note))


@router.get("/incidents", include_in_schema=False)
def list_page(request: Request, _user: Reader) -> Response:
    desk: IncidentDesk = request.app.state.incidents
    current = [i for i in desk.find(None) if i.state != "resolved"]
    past = desk.find("resolved", limit=50)
    return page(
        request,
        "incidents.html",
        current=current,
        past=past,
        when=_when,
        by_brand=desk.stats("brand"),
        by_responder=desk.stats("responder"),
    )


@router.get("/incidents/{incident_id}", include_in_schema=False)
def detail_page(request: Request, user: Reader, incident_id: int) -> Response:
    incident, events = request.app.state.incidents.detail(incident_id)
    return page(
        request,
        "incident.html",
        incident=incident,
        events=events,
        when=_when,
        may_act=can(user, "incidents"),
        error=request.query_params.get("error", ""),
    )


@router.post("/incidents/{incident_id}", include_in_schema=False, dependencies=Csrf)
async def act_form(request: Request, user: Reader, incident_id: int) -> Response:
    form = await request.form()
    try:
        request.app.state.incidents.act(
            incident_id, user, str(form.get("action", "")), str(form.get("note", ""))
        )
    except HTTPException as exc:
        if exc.status_code not in (400, 409):
            raise
        incident, events = request.app.state.incidents.detail(incident_id)
        return page(
            request,
            "incident.html",
            status_code=exc.status_code,
            incident=incident,
            events=events,
            when=_when,
            may_act=can(user, "incidents"),
            error=str(exc.detail),
        )
    return RedirectResponse(f"/incidents/{incident_id}", status_code=303)
