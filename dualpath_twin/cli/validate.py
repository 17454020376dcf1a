"""``validate``: a scenario resolved with defaults, its derived values, P/D range and bounds, or its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dualpath_twin import scenario as scn
from dualpath_twin.cli.common import JsonOpt, SetOpt, fmt_bytes, fmt_num, jsonable, load_scenario, print_json
from dualpath_twin.cli_errors import EXIT_USER_ERROR, die, guard


def _derived_sections(sc: scn.Scenario) -> dict[str, Any]:
    """Derived values, the P/D range and per-policy bounds; missing pieces are reported, not fatal."""
    out: dict[str, Any] = {}
    try:
        from dualpath_twin.validation import derived_values

        out["derived"] = jsonable(derived_values(sc))
    except (ImportError, NotImplementedError) as exc:
        out["derived"] = {"unavailable": str(exc) or type(exc).__name__}
    try:
        from dualpath_twin.analysis import pd_range

        out["pd_range"] = jsonable(pd_range(sc))
    except (ImportError, NotImplementedError) as exc:
        out["pd_range"] = {"unavailable": str(exc) or type(exc).__name__}
    bounds: dict[str, Any] = {}
    try:
        from dualpath_twin import api

        for pol in scn.POLICY_NAMES:
            bounds[pol] = jsonable(api.bounds(sc, pol))
    except (ImportError, NotImplementedError) as exc:
        bounds = {"unavailable": str(exc) or type(exc).__name__}
    out["bounds"] = bounds
    return out


def _comment_block(title: str, data: Any) -> list[str]:
    lines = [f"# ---- {title}"]
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    lines.append(f"#   {k}.{k2} = {_fmt_value(k2, v2)}")
            else:
                lines.append(f"#   {k} = {_fmt_value(k, v)}")
    else:
        lines.append(f"#   {data}")
    return lines


def _fmt_value(key: str, v: Any) -> str:
    if isinstance(v, int | float) and not isinstance(v, bool) and "bytes" in key:
        return f"{fmt_num(v)}  ({fmt_bytes(v)})"
    if isinstance(v, list | dict):
        return json.dumps(v)
    return fmt_num(v) if isinstance(v, int | float) else str(v)


def validate(
    scenario: Annotated[Path | None, typer.Argument(help="scenario TOML file", show_default=False)] = None,
    set_: SetOpt = None,
    json_: JsonOpt = False,
    paths: Annotated[bool, typer.Option("--paths", help="list every dotted path a scenario accepts")] = False,
) -> None:
    """Validate a scenario; print it resolved with defaults plus derived values, or its errors (exit 2)."""
    with guard():
        if paths:
            _print_paths(json_)
            return
        if scenario is None:
            die(
                "give a scenario file, e.g. `dualpath-twin validate scenarios/examples/quick.toml` (or --paths)"
            )
        assert scenario is not None
        try:
            sc = load_scenario(scenario, set_)
        except scn.ScenarioError as err:
            if json_:
                print_json({"valid": False, "source": err.source, "problems": err.problems})
            typer.echo(str(err), err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        extra = _derived_sections(sc)
        if json_:
            print_json({"valid": True, "source": str(scenario), "scenario": sc, **extra})
            return
        lines = [
            f"# {scenario}: valid (resolved with defaults; derived values as comments)",
            sc.to_toml().rstrip(),
            "",
        ]
        lines += _comment_block("derived values", extra["derived"])
        lines += _comment_block("bottleneck-free P/D range (DualPath paper)", extra["pd_range"])
        bounds = extra["bounds"]
        if "unavailable" in bounds:
            lines += _comment_block("analytic bounds", bounds)
        else:
            from dualpath_twin.analysis.verdict import resource_label

            lines.append("# ---- analytic bounds per policy (rounds/s; binding resource)")
            for pol, b in bounds.items():
                lines.append(
                    f"#   {pol}: max {fmt_num(b.get('max_rounds_per_s'))} rounds/s, "
                    f"{fmt_num(b.get('max_prompt_tokens_per_s'))} prompt tokens/s, "
                    f"min JCT {fmt_num(b.get('min_jct_s'))} s, bound by {resource_label(b.get('binding_resource')) or '-'}"
                )
        typer.echo("\n".join(lines))


def _print_paths(as_json: bool) -> None:
    """List every dotted scenario path (with default and description in JSON)."""
    paths = scn.all_paths()
    if not as_json:
        typer.echo("\n".join(paths))
        return
    default = scn.Scenario().model_dump(mode="json")
    rows = []
    for p in paths:
        node: Any = default
        model: Any = scn.Scenario
        info = None
        for part in p.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            info = model.model_fields[part]
            model = scn.table_model(info.annotation)
        rows.append({"path": p, "default": node, "description": info.description if info else ""})
    print_json(rows)



def register(app: typer.Typer) -> None:
    """Add ``validate`` to the CLI."""
    app.command()(validate)
