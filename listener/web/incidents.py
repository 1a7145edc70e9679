"""Incidents in the browser: open and past incidents, their timeline, acknowledge and resolve.

The rules are the response desk's, the same code path Slack's buttons and the
CLI take: the first acknowledgement takes ownership, and only the owner (or an
admin) may resolve, with a note. A web account with the admin role counts as
an admin; a web account named like a responder in the brand's rota is that
responder.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from alerts.incidents import Event, Incident
from alerts.response import Desk
from listener.config import Config
from listener.datadir import StateDatabases
from listener.errors import IncidentError
from listener.web.accounts import User, can
from listener.web.render import page
from listener.web.security import Csrf, Reader

__all__ = ["IncidentDesk", "router", "slack_actions"]

router = APIRouter()


class IncidentDesk:
    """The web app's view of the response desk: the same `Desk` as Slack's buttons and the CLI,
    so a browser acknowledgement follows the same rules and lands on the same trail."""

    def __init__(self, desk: Desk, owned: StateDatabases | None = None) -> None:
        self.desk = desk
        self._owned = owned

    @classmethod
    def from_config(cls, config: Config, state: StateDatabases | None = None) -> IncidentDesk:
        """Over `state`, or over databases of its own (closed with it) when none is given."""
        if state is not None:
            return cls(Desk.from_state(state, config))
        owned = StateDatabases.from_config(config)
        return cls(Desk.from_state(owned, config), owned)

    def find(self, state: str | None, limit: int = 100) -> list[Incident]:
        return self.desk.incidents.find(state=state, limit=limit)

    def detail(self, incident_id: int) -> tuple[Incident, list[Event]]:
        incident = self.desk.incidents.get(incident_id)
        if incident is None:
            raise HTTPException(404, "no such incident")
        return incident, self.desk.incidents.events(incident_id)

    def stats(self, by: Literal["brand", "responder"]) -> list[Any]:
        return self.desk.incidents.stats(by)

    def act(self, incident_id: int, user: User, action: str, note: str) -> Incident:
        """Acknowledge, resolve or note; a broken rule comes back as 409 with the desk's reason."""
        if not can(user, "incidents"):
            raise HTTPException(403, f"your role ({user.role}) may not work incidents")
        ref = str(incident_id)
        try:
            if action == "ack":
                return self.desk.acknowledge(ref, user.name)
            if action == "resolve":
                return self.desk.resolve(ref, user.name, note, admin=user.role == "admin")
            if action == "note" and note.strip():
                return self.desk.note(ref, user.name, note)
        except IncidentError as exc:
            status = 404 if str(exc).startswith("no incident") else 409
            raise HTTPException(status, str(exc)) from None
        raise HTTPException(400, "unknown action, or an empty note")

    def close(self) -> None:
        self.desk.close()
        if self._owned is not None:
            self._owned.close()


def slack_actions(config: Config, desk: Desk, state: StateDatabases | None = None) -> APIRouter | None:
    """Slack's button endpoint over the same desk, when Slack and its signing secret are set;
    with `state`, signatures already acted on are shared with every other copy of the endpoint."""
    secret = config.slack.signing_secret
    if secret is None or config.slack.bot_token is None:
        return None
    from alerts.interactivity import SlackActions, actions_router
    from alerts.replays import ReplayLog
    from alerts.slack import SlackNotifier

    slack = SlackNotifier.from_config(config.slack, config.brands)
    replays = None if state is None else ReplayLog(state.db("slack_replays"))
    return actions_router(SlackActions(desk, slack, secret.get_secret_value(), replays=replays))


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
