"""Build the sources named in `watch.yaml`, each once, however many brands list it.

Brands share sources: the same news feed may be listed under two brands, and it
must be fetched once (the matcher fans documents out to brands afterwards). A
name that means two different things is a configuration error, caught at start-up.

Source kinds register a builder for their config type with `register_source`
instead of being listed in a central table here. Modules that do so are found
through the `listener.sources` entry-point group (this package's own API
sources, and any installed plugin), loaded once, before the first build.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any, TypeVar

from crawlers.feed import FeedSource
from crawlers.source import Source
from crawlers.spider_source import SpiderSource
from crawlers.state import FetchState
from listener.config import BrandConfig, Config, FeedSourceConfig, Limits, SpiderSourceConfig
from listener.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "brands_by_source",
    "build_source",
    "build_sources",
    "load_source_plugins",
    "register_source",
    "sections_by_name",
]

Builder = Callable[[Any, Limits, FetchState], Source]
_B = TypeVar("_B", bound=Builder)
_BUILDERS: dict[type[Any], Builder] = {}
ENTRY_POINT_GROUP = "listener.sources"
_loaded_plugins = False
log = logging.getLogger(__name__)


def register_source(config_type: type[Any]) -> Callable[[_B], _B]:
    """Teach `build_sources` to build sources from `config_type` sections."""

    def decorate(builder: _B) -> _B:
        _BUILDERS[config_type] = builder
        return builder

    return decorate


register_source(FeedSourceConfig)(FeedSource.from_config)
register_source(SpiderSourceConfig)(SpiderSource.from_config)


def load_source_plugins() -> None:
    """Import every module registered under `listener.sources`; each registers its builders."""
    global _loaded_plugins
    if _loaded_plugins:
        return
    _loaded_plugins = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as exc:  # a broken plugin must not take the built-in sources down
            log.error("source plugin %s (%s) failed to load: %s", point.name, point.value, exc)


def sections_by_name(brands: Sequence[BrandConfig]) -> dict[str, Any]:
    """Each distinct source section by name, in the order they first appear.

    Raises `ConfigError` when one name means two different things under two brands.
    """
    chosen: dict[str, tuple[str, Any]] = {}
    problems: list[str] = []
    for brand in brands:
        for section in brand.sources:
            earlier = chosen.get(section.name)
            if earlier is None:
                chosen[section.name] = (brand.name, section)
            elif earlier[1] != section:
                problems.append(
                    f"sources: {section.name!r} is defined differently under brands "
                    f"{earlier[0]!r} and {brand.name!r}; give them different names or the same settings"
                )
    if problems:
        raise ConfigError(problems)
    return {name: section for name, (_, section) in chosen.items()}


def build_sources(config: Config, state: FetchState) -> list[Source]:
    """One source per distinct name, in the order they first appear."""
    return [build_source(s, config.limits, state) for s in sections_by_name(config.brands).values()]


def brands_by_source(config: Config) -> dict[str, list[str]]:
    """Which brands listed each source (for `source:` filters and reports)."""
    out: dict[str, list[str]] = {}
    for brand in config.brands:
        for section in brand.sources:
            names = out.setdefault(section.name, [])
            if brand.name not in names:
                names.append(brand.name)
    return out


def build_source(section: Any, limits: Limits, state: FetchState) -> Source:
    """The source one config section describes (plugins are loaded first)."""
    load_source_plugins()
    builder = _BUILDERS.get(type(section))
    if builder is None:
        raise ConfigError([f"sources: no source kind is registered for {type(section).__name__}"])
    return builder(section, limits, state)
