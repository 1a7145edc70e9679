"""Where a brand's alerts go, who answers them, and whether it is watched at all, from the browser.

Three more versioned parts of a brand (see `listener.brand_settings`), saved
like the alert rule and sources: checked with the watch.yaml models first,
then stored with who and when, and followed by the running stages within
seconds. `channel` is the brand's Slack channel, `oncall` its whole rota
(`OnCallConfig`: responders by Slack user id, hand-over, escalation chain,
response time), `archived` takes the brand out of matching, alerting and
polling while its stored mentions stay searchable; archiving again with
`false` brings it back. Slack user ids and names are not secrets, and the
rota has no field that could hold one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field, ValidationError

from listener.config import BrandConfig, OnCallConfig
from listener.textsafe import terminal_safe
from listener.web.accounts import User
from listener.web.brands import (
    BAD_NAME,
    FieldProblem,
    duration_text,
    field_problems,
    find_brand,
    form_errors,
    quote_name,
    require_editor,
    settings_store,
)
from listener.web.security import Csrf, EditorUser

__all__ = ["alerting_context", "check_channel", "check_oncall", "describe", "is_archived", "router"]

log = logging.getLogger(__name__)
router = APIRouter()

_DURATIONS = ("handover_every", "response_time", "remind_every")
_SCALARS = (*_DURATIONS, "handover_at", "admins", "digest_day", "digest_hour")
_ROWS = {"responders": ("name", "slack_user"), "escalation": ("responder", "channel")}
MAX_ROWS = 100  # responders or escalation levels; a form cannot make the page loop further
_USER_ID = "not a Slack user id: U or W, then capitals and digits (e.g. U024BE7LH)"


def is_archived(request: Request, name: str) -> bool:
    body = settings_store(request).latest(name, "archived")
    return bool(body and body.get("archived"))


# --- validation ---------------------------------------------------------------------------------


def check_channel(cfg: BrandConfig, value: str | None) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    """A `channel` version (empty: `slack.default_channel`), checked as watch.yaml's `slack_channel`."""
    channel = (value or "").strip() or None
    try:
        BrandConfig.model_validate({**_fields(cfg), "slack_channel": channel})
    except ValidationError as exc:
        return None, field_problems(exc)
    return {"slack_channel": channel}, []


def _fields(cfg: BrandConfig) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in BrandConfig.model_fields}


def check_oncall(
    current: OnCallConfig | None, values: dict[str, Any]
) -> tuple[OnCallConfig | None, list[FieldProblem]]:
    """`values` over the current rota (blank inputs keep it), validated as watch.yaml's `oncall:`."""
    values = {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
    base = current.model_dump(mode="json") if current is not None else {}
    try:
        rota = OnCallConfig.model_validate({**base, **values})
    except ValidationError as exc:
        return None, [_friendly(p) for p in field_problems(exc)]
    problems = [
        FieldProblem(f"responders.{i}.name", "no control characters in a name")
        for i, r in enumerate(rota.responders)
        if BAD_NAME.search(r.name.replace("/", "")) or len(r.name) > 80
    ]
    return (None, problems) if problems else (rota, [])


def _friendly(problem: FieldProblem) -> FieldProblem:
    if problem.field.endswith(".slack_user") and "pattern" in problem.message:
        return FieldProblem(problem.field, _USER_ID)
    if problem.field == "(form)":  # the model's own check: an escalation names an unknown responder
        return FieldProblem("escalation", problem.message)
    return problem


def describe(body: dict[str, Any]) -> str | None:
    """A `channel`, `oncall` or `archived` version in a line for the history; None for other parts."""
    if "slack_channel" in body:
        return f"Slack channel: {body['slack_channel'] or 'the default channel'}"
    if "archived" in body:
        return "archived: no matching, alerts or polling" if body["archived"] else "restored"
    if "oncall" in body:
        rota = body["oncall"]
        if rota is None:
            return "no rota"
        people = ", ".join(f"{r['name']} ({r['slack_user']})" for r in rota["responders"])
        chain = " → ".join(
            " in ".join(x for x in (lv.get("responder"), lv.get("channel")) if x) for lv in rota["escalation"]
        )
        return f"responders: {people}; escalation: {chain or 'none'}"
    return None


# --- JSON API -----------------------------------------------------------------------------------


class ChannelIn(BaseModel):
    slack_channel: str | None = Field(default=None, description="#name or a channel id; null: the default")


class ArchivedIn(BaseModel):
    archived: bool = Field(description="true takes the brand out of the pipeline; false brings it back")


def _saved(cfg: BrandConfig, change: Any) -> dict[str, Any]:
    return {"brand": cfg.name, **change.body, "author": change.author, "at": change.at.isoformat()}


@router.put(
    "/api/brands/{brand}/channel", tags=["brands"], summary="Set the Slack channel", dependencies=Csrf
)
def api_put_channel(request: Request, user: EditorUser, brand: str, body: ChannelIn) -> dict[str, Any]:
    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    change, problems = check_channel(cfg, body.slack_channel)
    if change is None:
        raise form_errors(problems)
    return _saved(cfg, settings_store(request).save(cfg.name, "channel", change, user.name))


@router.put(
    "/api/brands/{brand}/oncall", tags=["brands"], summary="Save a new on-call rota", dependencies=Csrf
)
def api_put_oncall(request: Request, user: EditorUser, brand: str, body: dict[str, Any]) -> dict[str, Any]:
    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    rota, problems = check_oncall(cfg.oncall, body)
    if rota is None:
        raise form_errors(problems)
    body = {"oncall": rota.model_dump(mode="json")}
    change = settings_store(request).save(cfg.name, "oncall", body, user.name)
    return _saved(cfg, change)


@router.delete(
    "/api/brands/{brand}/oncall", tags=["brands"], summary="No rota (no escalation)", dependencies=Csrf
)
def api_delete_oncall(request: Request, user: EditorUser, brand: str) -> dict[str, Any]:
    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    return _saved(cfg, settings_store(request).save(cfg.name, "oncall", {"oncall": None}, user.name))


@router.put("/api/brands/{brand}/archived", tags=["brands"], summary="Archive or restore", dependencies=Csrf)
def api_put_archived(request: Request, user: EditorUser, brand: str, body: ArchivedIn) -> dict[str, Any]:
    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    return _saved(cfg, _archive(request, user, cfg, body.archived))


def _archive(request: Request, user: User, cfg: BrandConfig, archived: bool) -> Any:
    change = settings_store(request).save(cfg.name, "archived", {"archived": archived}, user.name)
    log.info(
        "brands: %s %s by %s",
        terminal_safe(cfg.name, 80),
        "archived" if archived else "restored",
        terminal_safe(user.name, 80),
    )
    return change


# --- pages --------------------------------------------------------------------------------------


def _rota_values(rota: OnCallConfig | None) -> dict[str, str]:
    """The rota as the form shows it: durations as 15m or 7d, lists one row per item."""
    if rota is None:
        return {"digest": "1"}
    out = {name: duration_text(getattr(rota, name)) for name in _DURATIONS}
    out.update(handover_at=rota.handover_at.isoformat(), admins=", ".join(rota.admins))
    out.update(
        digest_day=rota.digest_day, digest_hour=str(rota.digest_hour), digest="1" if rota.digest else ""
    )
    for part, keys in _ROWS.items():
        for i, item in enumerate(getattr(rota, part)):
            out.update({f"{part}.{i}.{k}": getattr(item, k) or "" for k in keys})
    return out


def _row_count(values: dict[str, str], part: str, spare: int) -> int:
    """Rows in use plus `spare` blank ones; a posted row number past `MAX_ROWS` is ignored."""
    used = [
        int(k.split(".")[1])
        for k in values
        if k.startswith(f"{part}.") and k.split(".")[1].isdigit() and len(k.split(".")[1]) < 4
    ]
    return min(MAX_ROWS, (max(used) + 1 if used else 0)) + spare


def alerting_context(
    request: Request, cfg: BrandConfig, rota_posted: dict[str, str] | None, channel_posted: str | None
) -> dict[str, Any]:
    """What the brand page shows of its channel, rota and archive state (as typed, after an error)."""
    default = request.app.state.config.slack.default_channel
    values = rota_posted if rota_posted is not None else _rota_values(cfg.oncall)
    return {
        "channel": cfg.slack_channel or "" if channel_posted is None else channel_posted,
        "default_channel": default or "",
        "rota": values,
        "has_rota": cfg.oncall is not None,
        "responder_rows": range(_row_count(values, "responders", 2)),
        "level_rows": range(_row_count(values, "escalation", 1)),
        "archived": is_archived(request, cfg.name),
    }


def _posted_rota(form: Any) -> tuple[dict[str, Any], dict[str, str], dict[int, int], dict[int, int]]:
    """The form's rota values, the raw form, and which form row each kept list item came from."""
    raw = {str(k): str(v) for k, v in form.items() if k != "csrf"}
    values: dict[str, Any] = {k: raw.get(k, "") for k in _SCALARS}
    values["admins"] = [a.strip() for a in raw.get("admins", "").split(",") if a.strip()]
    values["digest"] = bool(raw.get("digest"))
    rows: dict[str, dict[int, int]] = {}
    for part, keys in _ROWS.items():
        items: list[dict[str, str | None]] = []
        rows[part] = {}
        for i in range(_row_count(raw, part, 0)):
            item = {k: raw.get(f"{part}.{i}.{k}", "").strip() or None for k in keys}
            if any(item.values()):
                rows[part][len(items)] = i
                items.append(item)
        values[part] = items
    return values, raw, rows["responders"], rows["escalation"]


def _to_form(problem: FieldProblem, responders: dict[int, int], levels: dict[int, int]) -> FieldProblem:
    """Name the form row a problem belongs to (blank rows are skipped before validation)."""
    parts = problem.field.split(".")
    rows = {"responders": responders, "escalation": levels}.get(parts[0])
    if rows is None or len(parts) < 2 or not parts[1].isdigit():
        return problem
    parts[1] = str(rows.get(int(parts[1]), parts[1]))
    if len(parts) == 2:  # a whole row is wrong (a level with neither responder nor channel)
        parts.append(_ROWS[parts[0]][-1])
    return FieldProblem(".".join(parts), problem.message)


def _errors(problems: list[FieldProblem]) -> dict[str, list[FieldProblem]]:
    """By the exact input (responders.1.slack_user); list-level problems by the list."""
    out: dict[str, list[FieldProblem]] = {}
    for p in problems:
        out.setdefault(p.field, []).append(p)
    return out


@router.post("/watch-terms/{brand}/channel", include_in_schema=False, dependencies=Csrf)
async def channel_submit(request: Request, user: EditorUser, brand: str) -> Any:
    from listener.web.watchterms import edit_response

    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    typed = str((await request.form()).get("slack_channel", ""))
    change, problems = check_channel(cfg, typed)
    if change is None:
        return edit_response(
            request, cfg, field_errors=_errors(problems), channel_posted=typed, status_code=400
        )
    settings_store(request).save(cfg.name, "channel", change, user.name)
    return RedirectResponse(f"/watch-terms/{quote_name(cfg.name)}?saved=channel#channel", status_code=303)


@router.post("/watch-terms/{brand}/oncall", include_in_schema=False, dependencies=Csrf)
async def oncall_submit(request: Request, user: EditorUser, brand: str) -> Any:
    from listener.web.watchterms import edit_response

    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    form = await request.form()
    if form.get("action") == "clear":
        settings_store(request).save(cfg.name, "oncall", {"oncall": None}, user.name)
        return RedirectResponse(f"/watch-terms/{quote_name(cfg.name)}?saved=oncall#oncall", status_code=303)
    values, raw, responders, levels = _posted_rota(form)
    rota, problems = check_oncall(cfg.oncall, values)
    if rota is None:
        errors = _errors([_to_form(p, responders, levels) for p in problems])
        return edit_response(request, cfg, field_errors=errors, rota_posted=raw, status_code=400)
    settings_store(request).save(cfg.name, "oncall", {"oncall": rota.model_dump(mode="json")}, user.name)
    return RedirectResponse(f"/watch-terms/{quote_name(cfg.name)}?saved=oncall#oncall", status_code=303)


@router.post("/watch-terms/{brand}/archive", include_in_schema=False, dependencies=Csrf)
async def archive_submit(request: Request, user: EditorUser, brand: str) -> Any:
    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    archived = (await request.form()).get("archived") == "1"
    _archive(request, user, cfg, archived)
    saved = "archived" if archived else "restored"
    return RedirectResponse(f"/watch-terms/{quote_name(cfg.name)}?saved={saved}", status_code=303)
