"""Grid axes for sweeps and sizing: ``path=v1,v2``, integer/float ranges ``1..8``, steps ``1..9+2``, geometric ``100..800x2``."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from dualpath_twin.scenario import all_paths, parse_value

MAX_AXIS_VALUES = 10_000


class PlanningError(ValueError):
    """Bad planning input (grid, cost table, criterion); the message names the item and the fix."""


def _num(text: str, item: str) -> int | float:
    v = parse_value(text.strip())
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise PlanningError(f"{item!r}: range bound {text!r} is not a number; write e.g. 1..8 or 100..800x2")
    return v


def _clean(v: float) -> int | float:
    """Round float noise from range arithmetic (0.30000000000000004 -> 0.3)."""
    r = round(v, 12)
    return r


def parse_range(text: str, item: str = "") -> list[Any]:
    """Expand one range token: ``a..b`` (step 1), ``a..b+s`` (arithmetic), ``a..bxf`` (geometric, factor f > 1)."""
    item = item or text
    lo_s, _, rest = text.partition("..")
    step_kind = "+"
    step_s = "1"
    if "x" in rest:
        hi_s, _, step_s = rest.partition("x")
        step_kind = "x"
    elif "+" in rest:
        hi_s, _, step_s = rest.partition("+")
    else:
        hi_s = rest
    lo, hi, step = _num(lo_s, item), _num(hi_s, item), _num(step_s, item)
    if hi < lo:
        raise PlanningError(f"{item!r}: empty range {text!r} (end {hi} < start {lo}); write start..end with start <= end")
    all_int = all(isinstance(x, int) for x in (lo, hi, step))
    out: list[Any] = []
    if step_kind == "x":
        if step <= 1:
            raise PlanningError(f"{item!r}: geometric factor must be > 1 in {text!r}, e.g. 100..800x2")
        if lo <= 0:
            raise PlanningError(f"{item!r}: geometric range must start above 0 in {text!r}")
        v: float = lo
        while v <= hi * (1 + 1e-9):
            out.append(int(round(v)) if all_int else _clean(v))
            v *= step
            if len(out) > MAX_AXIS_VALUES:
                break
    else:
        if step <= 0:
            raise PlanningError(f"{item!r}: step must be > 0 in {text!r}, e.g. 1..9+2")
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        if n > MAX_AXIS_VALUES:
            raise PlanningError(f"{item!r}: {text!r} has {n} values (limit {MAX_AXIS_VALUES}); use a larger step")
        out = [lo + i * step if all_int else _clean(lo + i * step) for i in range(n)]
    if len(out) > MAX_AXIS_VALUES:
        raise PlanningError(f"{item!r}: {text!r} has more than {MAX_AXIS_VALUES} values; use a larger factor")
    return out


def parse_values(text: str, item: str = "") -> list[Any]:
    """Parse a comma-separated value list whose items may be ranges; duplicates are dropped, order kept."""
    item = item or text
    out: list[Any] = []
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            raise PlanningError(f"{item!r}: empty value in the list; write path=v1,v2,... without empty items")
        vals = parse_range(tok, item) if ".." in tok else [parse_value(tok)]
        for v in vals:
            if v not in out:
                out.append(v)
    return out


def parse_grid(items: list[str], check_paths: bool = True) -> dict[str, list[Any]]:
    """Parse ``--grid``/``--vary`` items (``path=values``) into an ordered axis dict."""
    grid: dict[str, list[Any]] = {}
    known = set(all_paths())
    for it in items:
        if "=" not in it:
            raise PlanningError(f"grid item {it!r}: expected path=values, e.g. cluster.prefill_nodes=1..4")
        path, _, vals = it.partition("=")
        path = path.strip()
        if check_paths and path not in known and not path.startswith("model.overrides."):
            import difflib

            close = difflib.get_close_matches(path, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `dualpath-twin validate --paths`"
            raise PlanningError(f"grid item {it!r}: unknown scenario path {path!r}{hint}")
        if path in grid:
            raise PlanningError(f"grid item {it!r}: axis {path!r} given twice; merge the values into one item")
        grid[path] = parse_values(vals, it)
    return grid


def expand_grid(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of the axes, first axis slowest; an empty grid is one empty point."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_key(point: dict[str, Any], policy: str) -> str:
    """Canonical text identity of a (point, policy) pair, stable across processes."""
    return json.dumps({"point": dict(sorted(point.items())), "policy": policy}, sort_keys=True, separators=(",", ":"))
