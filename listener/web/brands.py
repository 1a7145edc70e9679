"""Brands, alert rules and sources from the browser: validated like watch.yaml, saved as versions.

A brand team adds a brand, tunes its spike rule or switches its sources on
and off here. Each save is checked with the watch.yaml models (`BrandConfig`,
`AlertRule`, the source sections), stored as a new version in
`listener.brand_settings` with who and when, and picked up by the running
pipeline within seconds (match, detect and the source scheduler follow the
versions). Problems come back per field, so the page shows each next to its
input, and queries with the caret under the column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field, SecretStr, ValidationError

from crawlers.factory import sections_by_name
from listener.brand_settings import SOURCE_ADAPTER, BrandSettingsStore, apply_sources, effective_brands
from listener.config import AlertRule, BrandConfig
from listener.errors import ConfigError
from listener.watch_versions import WatchTermStore
from listener.web.accounts import User
from listener.web.render import page
from listener.web.security import Csrf, EditorUser, Reader

__all__ = [
    "BAD_NAME",
    "FieldProblem",
    "brand_configs",
    "brand_names",
    "duration_text",
    "edit_context",
    "field_problems",
    "find_brand",
    "form_errors",
    "quote_name",
    "require_editor",
    "router",
    "settings_store",
]

router = APIRouter()
MAX_NAME = 80
BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class FieldProblem:
    """What is wrong, and with which field (`queries` problems carry the line and caret)."""

    field: str
    message: str
    line: int = 0
    caret: str = ""


# --- reading ------------------------------------------------------------------------------------


def settings_store(request: Request) -> BrandSettingsStore:
    terms: WatchTermStore = request.app.state.watch_terms
    return BrandSettingsStore(terms.db)


def brand_configs(request: Request) -> list[BrandConfig]:
    """watch.yaml's brands and the web app's, with every saved version applied; archived
    brands too, so their history stays searchable and they can be brought back."""
    terms: WatchTermStore = request.app.state.watch_terms
    return effective_brands(request.app.state.config.brands, terms.db, archived=True)


def brand_names(request: Request) -> list[str]:
    """Every brand's name for pickers and lookups, read per request so that a brand added
    through any web process (or the API) is offered everywhere at once."""
    return [b.name for b in brand_configs(request)]


def find_brand(request: Request, brand: str) -> BrandConfig:
    for cfg in brand_configs(request):
        if cfg.name.casefold() == brand.casefold():
            return cfg
    raise HTTPException(404, "no such brand")


def _configured(request: Request, name: str) -> BrandConfig | None:
    """The brand as watch.yaml (or its web 'brand added' version) has it, before saved changes."""
    for cfg in request.app.state.config.brands:
        if cfg.name.casefold() == name.casefold():
            return cfg  # type: ignore[no-any-return]
    for body in settings_store(request).added_brands():
        if body["name"].casefold() == name.casefold():
            return BrandConfig.model_validate(body)
    return None


def require_editor(user: User, brand: str) -> None:
    if not user.may_edit_brand(brand):
        raise HTTPException(403, f"your account may not edit {brand}")


def field_problems(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    out = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"] if p not in _SOURCE_TAGS]
        message = str(error["msg"]).removeprefix("Value error, ")
        out.append(FieldProblem(".".join([prefix, *loc]).strip(".") or prefix or "(form)", message))
    return out


_SOURCE_TAGS = {
    "feed", "spider", "sitemap", "hackernews", "reddit", "mastodon", "mastodon_stream",
    "bluesky", "googlenews", "appstore", "jetstream",
}  # fmt: skip


def form_errors(problems: list[FieldProblem]) -> HTTPException:
    return HTTPException(400, [p.__dict__ for p in problems])


# --- validation ---------------------------------------------------------------------------------


def check_new_brand(request: Request, name: str, queries: list[str]) -> list[FieldProblem]:
    from listener.web.watchterms import validate

    problems: list[FieldProblem] = []
    if not name:
        problems.append(FieldProblem("name", "a brand needs a name"))
    elif len(name) > MAX_NAME:
        problems.append(FieldProblem("name", f"at most {MAX_NAME} characters"))
    elif BAD_NAME.search(name):
        problems.append(FieldProblem("name", "no slashes or control characters in a brand name"))
    elif any(b.name.casefold() == name.casefold() for b in brand_configs(request)):
        problems.append(FieldProblem("name", f"there is already a brand called {name!r}"))
    for p in validate(queries):
        problems.append(FieldProblem("queries", p.message, p.line, p.caret))
    return problems


def check_rule(current: AlertRule, values: dict[str, Any]) -> tuple[AlertRule | None, list[FieldProblem]]:
    """`values` over the current rule, validated as watch.yaml's `alert:` section is."""
    values = {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
    try:
        return AlertRule.model_validate({**current.model_dump(), **values}), []
    except ValidationError as exc:
        return None, field_problems(exc)


def _secret_fields(section: Any) -> list[str]:
    return [name for name in type(section).model_fields if isinstance(getattr(section, name), SecretStr)]


def check_sources(
    request: Request, brand: BrandConfig, disabled: list[str], added: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    """A new `sources` version for `brand`, or the problems with it (per field)."""
    configured = _configured(request, brand.name)
    base = list(configured.sources) if configured is not None else []
    problems: list[FieldProblem] = []
    sections = []
    for index, raw in enumerate(added):
        try:
            section = SOURCE_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            problems += field_problems(exc, f"added[{index}]")
            continue
        if _secret_fields(section):
            problems.append(
                FieldProblem(
                    f"added[{index}].{_secret_fields(section)[0]}",
                    "tokens and passwords belong in watch.yaml as ${VAR}, not in the web app",
                )
            )
        sections.append(section)
    for index, section in enumerate(sections):
        if BAD_NAME.search(section.name.replace("/", "")):
            problems.append(FieldProblem(f"added[{index}].name", "no control characters in a source name"))
    names = [s.name for s in [*base, *sections]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(FieldProblem("added", f"two sources are called {name!r}"))
    for name in disabled:
        if name not in names:
            problems.append(FieldProblem("disabled", f"{name!r} is not one of {brand.name}'s sources"))
    if problems:
        return None, problems
    body = {
        "disabled": sorted(set(disabled)),
        "added": [SOURCE_ADAPTER.dump_python(s, mode="json") for s in sections],
    }
    proposed = brand.model_copy(update={"sources": apply_sources(base, body)})
    others = [b for b in brand_configs(request) if b.name.casefold() != brand.name.casefold()]
    try:
        sections_by_name([*others, proposed])
    except ConfigError as exc:
        return None, [FieldProblem("added", m.removeprefix("sources: ")) for m in exc.problems]
    return body, []


# --- JSON API -----------------------------------------------------------------------------------


class BrandIn(BaseModel):
    name: str = Field(description="shown everywhere; no slashes")
    queries: list[str] = Field(description="one watch query per item")


class SourcesIn(BaseModel):
    disabled: list[str] = Field(default_factory=list, description="source names to switch off")
    added: list[dict[str, Any]] = Field(default_factory=list, description="sections as in watch.yaml")


def _source_rows(request: Request, brand: BrandConfig) -> list[dict[str, Any]]:
    configured = _configured(request, brand.name)
    change = settings_store(request).latest(brand.name, "sources") or {}
    base = list(configured.sources) if configured is not None else []
    added = [SOURCE_ADAPTER.validate_python(raw) for raw in change.get("added", [])]
    disabled = set(change.get("disabled", []))
    return [
        {
            "name": s.name,
            "type": s.type,
            "enabled": s.name not in disabled,
            "origin": "watch.yaml" if i < len(base) else "web",
            "settings": SOURCE_ADAPTER.dump_python(s, mode="json"),
        }
        for i, s in enumerate([*base, *added])
    ]


def history_rows(request: Request, name: str) -> list[dict[str, Any]]:
    """Every saved version of the brand, newest first: queries, rule, sources, the brand itself."""
    terms: WatchTermStore = request.app.state.watch_terms
    rows: list[dict[str, Any]] = [
        {"at": v.at, "author": v.author, "part": "queries", "detail": " · ".join(v.queries)}
        for v in terms.history(name)
    ]
    configured = _configured(request, name)
    previous = (configured.alert if configured is not None else AlertRule()).model_dump(mode="json")
    for change in reversed(settings_store(request).history(name)):  # oldest first, to say what changed
        detail = _detail(change.body, previous if change.part == "alert" else None)
        if change.part == "alert":
            previous = change.body
        rows.append({"at": change.at, "author": change.author, "part": change.part, "detail": detail})
    rows.sort(key=lambda r: r["at"].timestamp(), reverse=True)
    return rows


def _detail(body: dict[str, Any], previous_rule: dict[str, Any] | None = None) -> str:
    from listener.web.brand_alerting import describe

    said = describe(body)
    if said is not None:
        return said
    if "disabled" in body:
        added = ", ".join(f"{s['name']} ({s['type']})" for s in body.get("added", []))
        return f"off: {', '.join(body['disabled']) or 'none'}; added: {added or 'none'}"
    if "queries" in body:
        return f"{body['name']}: " + " · ".join(body["queries"])
    before = previous_rule or {}
    changed = [f"{k}: {before.get(k)} → {v}" for k, v in sorted(body.items()) if before.get(k) != v]
    return ", ".join(changed) or "no change"


def _json_history(request: Request, name: str) -> list[dict[str, Any]]:
    return [{**r, "at": r["at"].isoformat()} for r in history_rows(request, name)]


@router.get("/api/brands", tags=["brands"], summary="Every brand with its queries, rule and sources")
def api_list(request: Request, _user: Reader) -> dict[str, Any]:
    return {
        "brands": [
            {
                "name": b.name,
                "queries": list(b.queries),
                "sources": [s.name for s in b.sources],
                "archived": _archived(request, b.name),
            }
            for b in brand_configs(request)
        ]
    }


@router.post("/api/brands", tags=["brands"], status_code=201, summary="Add a brand", dependencies=Csrf)
def api_add(request: Request, user: EditorUser, body: BrandIn) -> dict[str, Any]:
    name, queries = body.name.strip(), [q.strip() for q in body.queries if q.strip()]
    require_editor(user, name)
    problems = check_new_brand(request, name, queries)
    if problems:
        raise form_errors(problems)
    return add_brand(request, user, name, queries)


def add_brand(request: Request, user: User, name: str, queries: list[str]) -> dict[str, Any]:
    change = settings_store(request).save(name, "brand", {"name": name, "queries": queries}, user.name)
    return {"brand": name, "queries": queries, "author": change.author, "at": change.at.isoformat()}


@router.get(
    "/api/brands/{brand}",
    tags=["brands"],
    summary="A brand's queries, rule, sources, channel, rota, archive state and history",
)
def api_get(request: Request, _user: Reader, brand: str) -> dict[str, Any]:
    cfg = find_brand(request, brand)
    return {
        "brand": cfg.name,
        "queries": list(cfg.queries),
        "alert": cfg.alert.model_dump(mode="json"),
        "sources": _source_rows(request, cfg),
        "slack_channel": cfg.slack_channel,
        "oncall": None if cfg.oncall is None else cfg.oncall.model_dump(mode="json"),
        "archived": _archived(request, cfg.name),
        "history": _json_history(request, cfg.name),
    }


def _archived(request: Request, name: str) -> bool:
    from listener.web.brand_alerting import is_archived

    return is_archived(request, name)


@router.put("/api/brands/{brand}/alert", tags=["brands"], summary="Save a new alert rule", dependencies=Csrf)
def api_put_alert(request: Request, user: EditorUser, brand: str, body: dict[str, Any]) -> dict[str, Any]:
    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    rule, problems = check_rule(cfg.alert, body)
    if rule is None:
        raise form_errors(problems)
    change = settings_store(request).save(cfg.name, "alert", rule.model_dump(mode="json"), user.name)
    return {"brand": cfg.name, "alert": change.body, "author": change.author, "at": change.at.isoformat()}


@router.put(
    "/api/brands/{brand}/sources",
    tags=["brands"],
    summary="Switch sources off, add sources",
    dependencies=Csrf,
)
def api_put_sources(request: Request, user: EditorUser, brand: str, body: SourcesIn) -> dict[str, Any]:
    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    change, problems = check_sources(request, cfg, body.disabled, body.added)
    if change is None:
        raise form_errors(problems)
    saved = settings_store(request).save(cfg.name, "sources", change, user.name)
    return {"brand": cfg.name, "sources": _source_rows(request, cfg), "at": saved.at.isoformat()}


@router.get("/api/brands/{brand}/history", tags=["brands"], summary="Every saved version, newest first")
def api_history(request: Request, _user: Reader, brand: str) -> dict[str, Any]:
    cfg = find_brand(request, brand)
    return {"brand": cfg.name, "history": _json_history(request, cfg.name)}


# --- pages --------------------------------------------------------------------------------------


def duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


_DURATIONS = ("bucket", "baseline", "window", "hold", "cooldown")
_FEED_INPUTS = {"name": "feed_name", "url": "feed_url", "poll_interval": "feed_interval"}


def rule_fields(rule: AlertRule, posted: dict[str, str] | None = None) -> list[dict[str, str]]:
    """One input per rule field: its name, help, and the value to show (posted, or current)."""
    out = []
    for name, info in AlertRule.model_fields.items():
        value = getattr(rule, name)
        shown = duration_text(value) if name in _DURATIONS else str(value)
        out.append({"name": name, "help": info.description or "", "value": (posted or {}).get(name) or shown})
    return out


def edit_context(request: Request, cfg: BrandConfig, **extra: Any) -> dict[str, Any]:
    """What the brand page shows besides the queries: rule, sources, the whole history."""
    from listener.web.brand_alerting import alerting_context

    context: dict[str, Any] = {
        **alerting_context(request, cfg, extra.pop("rota_posted", None), extra.pop("channel_posted", None)),
        "rule_fields": rule_fields(cfg.alert, extra.pop("rule_posted", None)),
        "sources": _source_rows(request, cfg),
        "history_rows": history_rows(request, cfg.name),
        "field_errors": {},
    }
    context.update(extra)
    return context


def _errors(problems: list[FieldProblem]) -> dict[str, list[FieldProblem]]:
    out: dict[str, list[FieldProblem]] = {}
    for p in problems:
        out.setdefault(p.field.split(".")[0].split("[")[0], []).append(p)
        out.setdefault(p.field, [])
    return out


@router.post("/brands", include_in_schema=False, dependencies=Csrf)
async def add_submit(request: Request, user: EditorUser) -> Any:
    from listener.web.watchterms import list_rows

    form = await request.form()
    name, text = str(form.get("name", "")).strip(), str(form.get("queries", ""))
    require_editor(user, name or "?")
    queries = [line.strip() for line in text.splitlines() if line.strip()]
    problems = check_new_brand(request, name, queries)
    if problems:
        return page(
            request,
            "watch_terms.html",
            status_code=400,
            rows=list_rows(request),
            new_name=name,
            new_queries=text,
            field_errors=_errors(problems),
        )
    add_brand(request, user, name, queries)
    return RedirectResponse(f"/watch-terms/{quote_name(name)}?saved=1", status_code=303)


def quote_name(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@router.post("/watch-terms/{brand}/alert", include_in_schema=False, dependencies=Csrf)
async def alert_submit(request: Request, user: EditorUser, brand: str) -> Any:
    from listener.web.watchterms import edit_response

    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    form = await request.form()
    posted = {name: str(form.get(name, "")) for name in AlertRule.model_fields}
    rule, problems = check_rule(cfg.alert, dict(posted))
    if rule is None:
        errors = _errors(problems)
        return edit_response(request, cfg, rule_posted=posted, field_errors=errors, status_code=400)
    settings_store(request).save(cfg.name, "alert", rule.model_dump(mode="json"), user.name)
    return RedirectResponse(f"/watch-terms/{quote_name(cfg.name)}?saved=alert", status_code=303)


@router.post("/watch-terms/{brand}/sources", include_in_schema=False, dependencies=Csrf)
async def sources_submit(request: Request, user: EditorUser, brand: str) -> Any:
    from listener.web.watchterms import edit_response

    cfg = find_brand(request, brand)
    require_editor(user, cfg.name)
    form = await request.form()
    rows = _source_rows(request, cfg)
    enabled = {str(v) for v in form.getlist("enabled")}
    disabled = [r["name"] for r in rows if r["name"] not in enabled]
    added = [r["settings"] for r in rows if r["origin"] == "web"]
    problems: list[FieldProblem] = []
    origin: dict[int, str] = {}  # index in `added` -> the form input it came from
    feed_name, feed_url = str(form.get("feed_name", "")).strip(), str(form.get("feed_url", "")).strip()
    if feed_name or feed_url:
        feed: dict[str, Any] = {"type": "feed", "name": feed_name, "url": feed_url}
        interval = str(form.get("feed_interval", "")).strip()
        if interval:
            feed["poll_interval"] = interval
        origin[len(added)] = "feed"
        added.append(feed)
    text = str(form.get("source_yaml", "")).strip()
    if text:
        try:
            section = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            section = None
            problems.append(FieldProblem("source_yaml", f"not YAML: {getattr(exc, 'problem', exc)}"))
        if section is not None and not isinstance(section, dict):
            problems.append(FieldProblem("source_yaml", "one source section: a mapping with type and name"))
        elif isinstance(section, dict):
            origin[len(added)] = "yaml"
            added.append(section)
    change = None
    if not problems:
        change, problems = check_sources(request, cfg, disabled, added)
    if change is None:
        problems = [_form_field(p, origin) for p in problems]
        return edit_response(
            request, cfg, field_errors=_errors(problems), sources_posted=dict(form), status_code=400
        )
    settings_store(request).save(cfg.name, "sources", change, user.name)
    return RedirectResponse(f"/watch-terms/{quote_name(cfg.name)}?saved=sources", status_code=303)


def _form_field(problem: FieldProblem, origin: dict[int, str]) -> FieldProblem:
    """Errors in a newly added section belong to the input it came from (YAML box or feed fields)."""
    for index, kind in origin.items():
        prefix = f"added[{index}]"
        if not problem.field.startswith(prefix):
            continue
        rest = problem.field.removeprefix(prefix).lstrip(".")
        if kind == "yaml":
            return FieldProblem("source_yaml", f"{rest}: {problem.message}" if rest else problem.message)
        return FieldProblem(_FEED_INPUTS.get(rest, "feed_url"), problem.message)
    return problem
