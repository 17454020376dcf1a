"""The decode engine's stated needs (``DecodeHost``, ``Req`` protocols) match what it uses and what the world has.

The decoder does not import the world (no cycle); these checks keep the protocols honest: every
attribute the decoder reads on its host is declared in ``DecodeHost``, and a real ``World`` (and
its ``Req``) has every declared member.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from dualpath_twin import scenario as scn
from dualpath_twin.policies import get_policy
from dualpath_twin.sim import decoder
from dualpath_twin.sim.cost import build_cost_model
from dualpath_twin.sim.world import Req, World
from dualpath_twin.workload import build_workload

ROOT = Path(__file__).resolve().parents[1]


def _members(proto: type) -> set[str]:
    names = set(proto.__annotations__)
    names |= {n for n, v in vars(proto).items() if inspect.isfunction(v)}
    return names


def _host_attributes_used() -> set[str]:
    """Attributes read on the host: ``world.X`` in ``DecodeEngine.__init__`` and ``w.X`` where ``w = self.w``."""
    tree = ast.parse(Path(decoder.__file__).read_text(encoding="utf-8"))
    engine = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DecodeEngine")
    used: set[str] = set()
    for fn in (n for n in engine.body if isinstance(n, ast.FunctionDef)):
        aliases = {"world"} if fn.name == "__init__" else set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and ast.unparse(node.value) == "self.w":
                aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                used.add(node.attr)
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self.w":
                used.add(node.attr)
    return used


def test_decoder_uses_only_what_decode_host_declares() -> None:
    used = _host_attributes_used()
    assert {"env", "cost", "_complete", "_write_back"} <= used  # the scan sees the engine's use
    missing = used - _members(decoder.DecodeHost)
    assert not missing, f"sim/decoder.py uses {sorted(missing)} on its host: declare them in DecodeHost"


def test_world_and_its_requests_have_every_declared_member() -> None:
    sc = scn.apply_overrides(scn.load(ROOT / "scenarios/examples/quick.toml"), {"workload.agents": 2})
    world = World(sc, build_workload(sc), get_policy("dualpath"), build_cost_model(sc))
    assert not [m for m in _members(decoder.DecodeHost) if not hasattr(world, m)]
    assert set(decoder.Req.__annotations__) <= set(Req.__slots__)
