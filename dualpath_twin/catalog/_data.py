"""Loading the catalog TOML files (packaged data plus optional user files) and name lookup."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

ENV_EXTRA_FILES = "DUALPATH_TWIN_CATALOG"
"""Environment variable: extra catalog TOML files (``os.pathsep``-separated) merged over the packaged ones."""


class CatalogError(ValueError):
    """An unknown catalog name, a bad catalog entry or a bad override.

    ``field`` names what was wrong (``name``, ``kv_format``, ``overrides.<key>``, or a catalog
    file and table), ``suggestions`` holds close matches, when there are any, and ``detail`` is
    the message without the field and value (for callers that print those themselves).
    """

    def __init__(self, message: str, field: str = "", suggestions: list[str] | None = None, detail: str = "") -> None:
        self.field = field
        self.suggestions = suggestions or []
        self.detail = detail or message  # the message without the field/value prefix
        super().__init__(message)


def normalize_name(name: str) -> str:
    """Lower-case and drop everything but letters and digits ("DS 660B" -> "ds660b")."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class Entry:
    """One raw catalog table with where it came from (for error messages)."""

    name: str
    data: dict[str, Any]
    origin: str  # e.g. "models.toml [models.\"DeepSeek-V3.2\"]"


def _read_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CatalogError(f"{origin}: TOML syntax error: {err}; fix the file's syntax", origin) from None


def _packaged_text(filename: str) -> str:
    return resources.files("dualpath_twin.catalog").joinpath("data", filename).read_text(encoding="utf-8")


def _extra_files() -> tuple[str, ...]:
    raw = os.environ.get(ENV_EXTRA_FILES, "")
    return tuple(p for p in raw.split(os.pathsep) if p.strip())


@lru_cache(maxsize=16)
def _load_section(section: str, extra: tuple[str, ...]) -> dict[str, Entry]:
    """All entries of one section ("gpus", "nics", "models"), keyed by normalized name and alias."""
    sources: list[tuple[str, dict[str, Any]]] = [
        (f"{section}.toml", _read_toml(_packaged_text(f"{section}.toml"), f"{section}.toml"))
    ]
    for path in extra:
        p = Path(path)
        if not p.is_file():
            raise CatalogError(
                f"{ENV_EXTRA_FILES}: catalog file {p} not found; set it to existing TOML files separated by '{os.pathsep}'",
                ENV_EXTRA_FILES,
            )
        sources.append((str(p), _read_toml(p.read_text(encoding="utf-8"), str(p))))
    canonical: dict[str, Entry] = {}
    for origin_file, doc in sources:
        table = doc.get(section, {})
        if not isinstance(table, dict):
            raise CatalogError(f"{origin_file}: [{section}] must be a table of tables", origin_file)
        for name, data in table.items():
            origin = f'{origin_file} [{section}."{name}"]'
            if not isinstance(data, dict):
                raise CatalogError(f"{origin}: must be a table of fields, got {data!r}", origin)
            canonical[normalize_name(name)] = Entry(name, dict(data), origin)  # later files replace
    index: dict[str, Entry] = {}
    for entry in canonical.values():
        aliases = entry.data.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise CatalogError(f"{entry.origin}: aliases must be a list of strings", entry.origin)
        for key in [entry.name, *aliases]:
            k = normalize_name(key)
            other = index.get(k)
            if other is not None and other.name != entry.name:
                raise CatalogError(
                    f"{entry.origin}: name or alias {key!r} also names {other.name!r}; make aliases unique",
                    entry.origin,
                )
            index[k] = entry
    return index


def section(section_name: str) -> dict[str, Entry]:
    """Index of one catalog section (cached; honours the extra-files environment variable)."""
    return _load_section(section_name, _extra_files())


def clear_cache() -> None:
    """Forget loaded catalog files (after editing them or changing the environment variable)."""
    _load_section.cache_clear()


def canonical_names(section_name: str) -> list[str]:
    """Canonical entry names of a section, in file order."""
    seen: dict[str, None] = {}
    for e in section(section_name).values():
        seen.setdefault(e.name, None)
    return list(seen)


def lookup(section_name: str, name: str, what: str) -> Entry:
    """Find an entry by name or alias (case/punctuation-insensitive) or raise CatalogError with suggestions."""
    if not isinstance(name, str) or not name.strip():
        raise CatalogError(f"{what} name must be a non-empty string, got {name!r}", "name")
    idx = section(section_name)
    hit = idx.get(normalize_name(name))
    if hit is not None:
        return hit
    keys = list(idx)
    close_keys = difflib.get_close_matches(normalize_name(name), keys, n=5, cutoff=0.5)
    close: list[str] = []
    for k in close_keys:
        if idx[k].name not in close:
            close.append(idx[k].name)
    names = canonical_names(section_name)
    hint = f"did you mean {', '.join(close[:3])}?" if close else f"known: {', '.join(names)}"
    raise CatalogError(f"unknown {what} {name!r}; {hint}", "name", close[:3])
