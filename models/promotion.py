"""Promoted models in the data directory, and the running stage's view of them.

`listener train --from-feedback` writes a model that passed its gate to
`<data_dir>/models/default/` (trained on every brand's corrections) or
`<data_dir>/models/brands/<slug>/` (one brand's), as a numbered version folder
plus `current.json` naming it. The folder is complete before its rename and
`current.json` is replaced in one `os.replace`, so a reader sees the old model
or the new one, never half of either. The classify stage reads `current.json`'s
modification time between batches (one `stat` per promoted name, at most every
`check_every_s`) and loads a new version when it changes, so a promotion takes
effect on the next batch without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listener.errors import ClassifierError
from models.classifier import Classifier

__all__ = ["CURRENT_FILE", "DEFAULT_NAME", "ModelShelf", "Promoted", "PromotedModels", "shelf_name"]

log = logging.getLogger(__name__)

CURRENT_FILE = "current.json"
DEFAULT_NAME = "default"


def shelf_name(brand: str | None) -> str:
    """`default` for every brand's model; `brands/<slug>` for one brand's."""
    if brand is None:
        return DEFAULT_NAME
    slug = re.sub(r"[^a-z0-9]+", "-", brand.casefold()).strip("-") or "brand"
    return f"brands/{slug}"


@dataclass(frozen=True)
class Promoted:
    name: str
    version: str
    path: Path
    promoted_at: str


class ModelShelf:
    """The promoted models under `root` (`<data_dir>/models`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def current(self, name: str) -> Promoted | None:
        pointer = self.root / name / CURRENT_FILE
        try:
            data: dict[str, Any] = json.loads(pointer.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ClassifierError(f"cannot read {pointer}: {exc}") from None
        return Promoted(name, str(data["version"]), self.root / name / str(data["folder"]),
                        str(data.get("promoted_at", "")))

    def workspace(self, name: str) -> Path:
        """A fresh folder beside the versions, so promotion is a rename on the same file system."""
        work = self.root / name / f".work-{os.getpid()}-{time.time_ns()}"
        work.mkdir(parents=True)
        return work

    def promote(self, name: str, candidate: Path, report: dict[str, Any]) -> Promoted:
        """Move the finished `candidate` folder in as the next version and point `current.json` at it."""
        place = self.root / name
        numbers = [int(p.name[1:]) for p in place.glob("v*") if p.name[1:].isdigit()]
        version = f"v{max(numbers, default=0) + 1}"
        folder = place / version
        os.replace(candidate, folder)
        at = datetime.now(UTC).isoformat(timespec="seconds")
        pointer = {"version": version, "folder": version, "promoted_at": at, "report": report}
        tmp = place / f".{CURRENT_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(pointer, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, place / CURRENT_FILE)
        return Promoted(name, version, folder, at)

    def discard(self, candidate: Path) -> None:
        shutil.rmtree(candidate, ignore_errors=True)

    def names(self) -> Iterator[str]:
        if (self.root / DEFAULT_NAME / CURRENT_FILE).is_file():
            yield DEFAULT_NAME
        for pointer in sorted((self.root / "brands").glob(f"*/{CURRENT_FILE}")):
            yield f"brands/{pointer.parent.name}"


class PromotedModels:
    """Which classifier scores each brand: its promoted model, else the promoted default, else `fallback`.

    `load` builds a classifier from a model folder the way the configured one
    was built (language routing and all). A version that fails to load is
    logged and the previous classifier kept, so a bad file never stops scoring.
    """

    def __init__(self, root: Path, fallback: Classifier, load: Callable[[Path], Classifier], *,
                 check_every_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._shelf = ModelShelf(root)
        self.fallback, self._load = fallback, load
        self._check_every_s, self._clock = check_every_s, clock
        self._checked = float("-inf")
        self._seen: dict[str, int] = {}  # name -> current.json mtime_ns when loaded
        self._loaded: dict[str, Classifier] = {}

    def refresh(self) -> None:
        """Load any newly promoted version; cheap when nothing changed (a stat per name)."""
        now = self._clock()
        if now - self._checked < self._check_every_s:
            return
        self._checked = now
        for name in self._shelf.names():
            try:
                stamp = (self._shelf.root / name / CURRENT_FILE).stat().st_mtime_ns
            except OSError:
                continue
            if self._seen.get(name) == stamp:
                continue
            self._seen[name] = stamp
            try:
                promoted = self._shelf.current(name)
                if promoted is not None:
                    self._loaded[name] = self._load(promoted.path)
                    log.info("classify: now scoring %s with promoted model %s", name, promoted.version)
            except (ClassifierError, OSError, KeyError) as exc:
                log.warning("classify: keeping the previous model for %s; %s cannot be loaded: %s",
                            name, name, exc)

    def for_brand(self, brand: str) -> Classifier:
        return (self._loaded.get(shelf_name(brand)) or self._loaded.get(DEFAULT_NAME)
                or self.fallback)
