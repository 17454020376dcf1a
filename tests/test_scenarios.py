"""Every bundled scenario file loads, validates (schema + catalog) and round-trips losslessly."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from dualpath_twin import scenario as scn

ROOT = Path(__file__).resolve().parents[1]
# scenarios/calibration/ holds measurement files for `calibrate`, not scenarios (tests/test_calibrate.py)
SCENARIO_FILES = sorted(p for p in (ROOT / "scenarios").rglob("*.toml") if p.parent.name != "calibration")
PAPER = {
    "ds660b-2p4d": ("DeepSeek-V3.2", 2, 4, 80.0),
    "ds27b-1p1d": ("DS-27B", 1, 1, 80.0),
    "qwen32b-1p2d": ("Qwen2.5-32B", 1, 2, 320.0),
}


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT / "scenarios"))


def test_bundled_scenarios_exist() -> None:
    names = {_id(p) for p in SCENARIO_FILES}
    for key in PAPER:
        for mal in ("32k", "48k", "64k"):
            assert f"paper/{key}-{mal}.toml" in names
    for ex in ("quick", "online-serving", "mooncake-replay", "claude-code", "b200-800g-whatif"):
        assert f"examples/{ex}.toml" in names


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=_id)
def test_scenario_loads_and_validates(path: Path) -> None:
    sc = scn.load(path)  # full validation: schema and catalog/semantic checks
    assert sc.name == path.stem
    assert sc.description, "every bundled scenario explains itself in `description`"


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=_id)
def test_scenario_round_trips_losslessly(path: Path, tmp_path: Path) -> None:
    sc = scn.load(path)
    text = sc.to_toml()
    again = scn.from_toml(text)
    assert again == sc
    assert again.to_toml() == text
    assert again.content_hash() == sc.content_hash()
    out = tmp_path / path.name
    scn.save(sc, out)
    assert scn.load(out) == sc
    # every value written in the file survives: the file is a subset of the resolved scenario
    raw = tomllib.loads(path.read_text())
    resolved = tomllib.loads(text)

    def contained(part: dict, whole: dict, where: str) -> None:
        for k, v in part.items():
            if k == "trace_path":  # resolved against the scenario's folder on load
                assert Path(whole[k]).is_absolute()
                continue
            assert k in whole, f"{where}{k} lost in round trip"
            if isinstance(v, dict):
                contained(v, whole[k], f"{where}{k}.")
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):  # [[faults]] tables
                assert len(whole[k]) == len(v), f"{where}{k}: {len(v)} tables became {len(whole[k])}"
                for i, (x, y) in enumerate(zip(v, whole[k], strict=True)):
                    contained(x, y, f"{where}{k}[{i}].")
            else:
                assert whole[k] == v, f"{where}{k}: {v!r} became {whole[k]!r}"

    contained(raw, resolved, "")


@pytest.mark.parametrize("key", sorted(PAPER))
@pytest.mark.parametrize("mal", ["32k", "48k", "64k"])
def test_paper_scenarios_use_the_published_testbed(key: str, mal: str) -> None:
    model, p, d, dram = PAPER[key]
    sc = scn.load(ROOT / "scenarios" / "paper" / f"{key}-{mal}.toml")
    assert (sc.cluster.prefill_nodes, sc.cluster.decode_nodes, sc.cluster.gpus_per_node) == (p, d, 8)
    assert sc.cluster.gpu == "H800" and sc.cluster.dram_buffer_gb == dram
    assert (sc.network.snic_gbps, sc.network.snics_per_node) == (400.0, 1)
    assert (sc.network.cnic_gbps, sc.network.cnics_per_node) == (400.0, 8)
    assert sc.network.dram_gbps == 4000.0  # ~500 GB/s
    assert sc.model.name == model
    assert sc.workload.dataset == f"paper-{mal}" and sc.workload.kind == "synthetic"
    assert (sc.workload.mode, sc.workload.agents) == ("offline", 1024)
    assert sc.policy.name == "dualpath"


def test_examples_cover_their_what_ifs() -> None:
    ex = ROOT / "scenarios" / "examples"
    online = scn.load(ex / "online-serving.toml")
    assert online.workload.mode == "online" and online.workload.arrival_rate_aps > 0
    moon = scn.load(ex / "mooncake-replay.toml")
    assert moon.workload.kind == "trace" and moon.workload.trace_format == "mooncake"
    assert moon.workload.trace_path is not None
    trace = Path(moon.workload.trace_path)
    assert trace.is_file() and trace.is_relative_to(ROOT / "data" / "traces")
    assert scn.load(ex / "claude-code.toml").workload.dataset == "claude-code"
    b200 = scn.load(ex / "b200-800g-whatif.toml")
    assert b200.cluster.gpu == "B200" and b200.network.snic_gbps == 800.0 and b200.network.cnic_gbps == 800.0
    quick = scn.load(ex / "quick.toml")
    assert quick.model.name == "DeepSeek-V3.2" and (
        quick.cluster.prefill_nodes,
        quick.cluster.decode_nodes,
    ) == (2, 4)
    assert quick.workload.agents <= 128
