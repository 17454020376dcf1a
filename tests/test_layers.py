"""The package's import graph: no cycles between modules, and the simulation core imports no upper layer.

The graph is read from the source with ``ast`` (nothing is imported). Every ``import`` and
``from ... import`` counts wherever it stands: at module level, inside a function (a lazy import
is still a dependency), under ``if TYPE_CHECKING:`` (a type-only cycle still ties the two modules
together) or in a ``try``. ``from pkg import name`` is an edge to ``pkg.name`` when that is a
module, else to ``pkg`` (its ``__init__``). Importing ``a.b.c`` also runs ``a/b/__init__.py``; that
implicit edge is not counted (as import-linter/grimp do), so a package's ``__init__`` may
re-export its submodules, but a submodule that imports from its own package's ``__init__`` is an
edge to it. Imports built from strings (``importlib.import_module``) are not seen.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG_ROOT = Path(__file__).resolve().parents[1] / "dualpath_twin"

CORE = ("sim", "policies", "analysis", "workload", "catalog")
"""Subpackages of the simulation core: they may not import the layers below."""
FORBIDDEN_FOR_CORE = ("dualpath_twin.ui", "dualpath_twin.store", "dualpath_twin.report", "plotly", "streamlit", "duckdb")
"""Presentation and persistence: modules (and their submodules) the core must never import."""

Edge = tuple[str, str, int]  # (importer, imported, line)


def module_names(pkg_root: Path) -> dict[str, tuple[Path, bool]]:
    """Every module of the package under ``pkg_root``: dotted name -> (file, is a package __init__)."""
    out: dict[str, tuple[Path, bool]] = {}
    for p in sorted(pkg_root.rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        parts = list(p.relative_to(pkg_root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (p, is_pkg)
    return out


def imports_of(name: str, path: Path, is_pkg: bool, modules: dict[str, tuple[Path, bool]]) -> list[Edge]:
    """Every import in one module's source (any depth), resolved to a module name (third-party: as written)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = name.split(".") if is_pkg else name.split(".")[:-1]  # the package relative imports start from
    out: list[Edge] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((name, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((name, sub if sub in modules else target, node.lineno))
    return out


def import_graph(pkg_root: Path) -> tuple[dict[str, list[Edge]], dict[str, tuple[Path, bool]]]:
    """Each module's imports (all of them, third-party included), and the package's modules."""
    modules = module_names(pkg_root)
    return {m: imports_of(m, p, is_pkg, modules) for m, (p, is_pkg) in modules.items()}, modules


def cycles(pkg_root: Path) -> list[list[str]]:
    """The import cycles between the package's modules: each strongly connected component of 2+ modules, sorted."""
    graph, modules = import_graph(pkg_root)
    succ = {m: sorted({t for _, t, _ in edges if t in modules and t != m}) for m, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(succ):  # Tarjan, iterative (no recursion limit on deep chains)
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            if i < len(succ[v]):
                work.append((v, i + 1))
                w = succ[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return sorted(found)


def describe_cycle(pkg_root: Path, comp: list[str]) -> str:
    """The edges inside one cycle, with file lines, for the failure message."""
    graph, _ = import_graph(pkg_root)
    inside = set(comp)
    lines = [f"  {a} -> {b} (line {n})" for m in comp for a, b, n in graph[m] if b in inside and b != a]
    return "cycle between " + ", ".join(comp) + ":\n" + "\n".join(sorted(set(lines)))


def upward_imports(pkg_root: Path) -> list[str]:
    """Imports of ui/store/report/plotly/streamlit/duckdb by a module of the simulation core, as messages."""
    graph, _ = import_graph(pkg_root)
    pkg = pkg_root.name
    core = tuple(f"{pkg}.{c}" for c in CORE)
    forbidden = tuple(f.replace("dualpath_twin", pkg, 1) for f in FORBIDDEN_FOR_CORE)
    bad = []
    for m, edges in graph.items():
        if not any(m == c or m.startswith(c + ".") for c in core):
            continue
        for _, target, line in edges:
            if any(target == f or target.startswith(f + ".") for f in forbidden):
                bad.append(f"{m} (line {line}) imports {target}")
    return sorted(bad)


# ---------------------------------------------------------------- the package itself


def test_no_import_cycles() -> None:
    found = cycles(PKG_ROOT)
    assert not found, "import cycles (move the shared piece to the lower module):\n" + "\n".join(
        describe_cycle(PKG_ROOT, c) for c in found
    )


def test_core_imports_no_ui_store_report_or_plotting() -> None:
    bad = upward_imports(PKG_ROOT)
    assert not bad, (
        "the simulation core (sim/, policies/, analysis/, workload/, catalog/) must not import ui, store, report, "
        "plotly, streamlit or duckdb; move the code up a layer or pass plain values down:\n" + "\n".join(bad)
    )


def test_graph_sees_lazy_and_type_only_imports() -> None:
    """The walker is not vacuous: it finds known module-level, function-level and relative imports."""
    graph, modules = import_graph(PKG_ROOT)
    assert len(modules) > 50
    world = {t for _, t, _ in graph["dualpath_twin.sim.world"]}
    assert {"dualpath_twin.sim.decoder", "dualpath_twin.sim.network", "simpy"} <= world
    api = {t for _, t, _ in graph["dualpath_twin.api"]}
    assert "dualpath_twin.workload" in api  # imported inside a function


# ---------------------------------------------------------------- the checks catch what they should


def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "fakepkg"
    for rel, text in files.items():
        f = pkg / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
    return pkg


@pytest.mark.parametrize(
    ("a_src", "why"),
    [
        ("from fakepkg.b import B\n", "module level"),
        ("def f():\n    from fakepkg import b\n    return b\n", "lazy, in a function"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n", "type-only, relative"),
    ],
)
def test_cycle_found(tmp_path: Path, a_src: str, why: str) -> None:
    pkg = _write(tmp_path, {"__init__.py": "", "a.py": a_src, "b.py": "import fakepkg.c\n", "c.py": "from . import a\n"})
    assert cycles(pkg) == [["fakepkg.a", "fakepkg.b", "fakepkg.c"]], why
    assert "fakepkg.c -> fakepkg.a (line 1)" in describe_cycle(pkg, cycles(pkg)[0])


def test_package_init_reexport_is_not_a_cycle_but_importing_it_back_is(tmp_path: Path) -> None:
    files = {"__init__.py": "", "w/__init__.py": "from fakepkg.w.s import S\n", "w/s.py": "S = 1\n"}
    assert cycles(_write(tmp_path, files)) == []
    files["w/s.py"] = "def f():\n    from fakepkg.w import T\n    return T\n"
    assert cycles(_write(tmp_path, files)) == [["fakepkg.w", "fakepkg.w.s"]]


def test_upward_import_found(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "sim/__init__.py": "",
        "sim/world.py": "import simpy\nfrom fakepkg.scenario import X\n",
        "scenario.py": "X = 1\n",
        "store/__init__.py": "",
        "store/db.py": "import duckdb\nfrom fakepkg.sim import world\n",  # the store may import the core
    }
    pkg = _write(tmp_path, files)
    assert upward_imports(pkg) == []
    files["sim/world.py"] += "def save():\n    from fakepkg.store.db import put\n    import plotly.graph_objects as go\n"
    files["policies/p.py"] = "from ..ui import page\n"
    files["ui/__init__.py"] = ""
    assert upward_imports(_write(tmp_path, files)) == [
        "fakepkg.policies.p (line 1) imports fakepkg.ui",
        "fakepkg.sim.world (line 4) imports fakepkg.store.db",
        "fakepkg.sim.world (line 5) imports plotly.graph_objects",
    ]


if __name__ == "__main__":  # print the package's cycles and upward imports
    for comp in cycles(PKG_ROOT):
        print(describe_cycle(PKG_ROOT, comp))
    print("\n".join(upward_imports(PKG_ROOT)) or "no upward imports", file=sys.stderr)
