"""The Scenario page's derived values are numbers for trace and sample-only datasets, not 'None'."""

from __future__ import annotations

import pytest

from dualpath_twin import scenario as scn
from dualpath_twin.ui import backend
from dualpath_twin.workload import workload_stats


@pytest.mark.parametrize("path", ["scenarios/examples/mooncake-replay.toml", "scenarios/examples/claude-code.toml"])
def test_per_round_tiles_have_values(path: str) -> None:
    sc = scn.load(path)
    by = {d.key: d.value for d in backend.derived_values(sc)}
    for key in ("context_tokens_mean", "append_tokens_mean", "kv_bytes_per_round_mean"):
        assert by[key] not in ("None", "", None), (key, by[key])
    assert ("trace_rounds" in by) == (sc.workload.kind == "trace")


def test_trace_figures_are_the_trace_statistics() -> None:
    sc = scn.load("scenarios/examples/mooncake-replay.toml")
    raw = backend.trace_derived(sc)
    from dualpath_twin.catalog import get_model
    from dualpath_twin.workload.build import resolve_trace_path

    ws = workload_stats(resolve_trace_path(sc), model_spec=get_model(sc.model.name, sc.model.kv_format),
                        block_tokens=sc.storage.block_tokens)
    assert raw["context_tokens_mean"] == pytest.approx(ws.prompt_tokens.mean)
    assert raw["trace_rounds"] == ws.rounds


def test_a_missing_trace_is_explained_not_none(tmp_path) -> None:
    sc = scn.load("scenarios/examples/mooncake-replay.toml")  # the trace deleted after the scenario was checked
    sc = sc.model_copy(update={"workload": sc.workload.model_copy(update={"trace_path": str(tmp_path / "nope.jsonl")})})
    raw = backend.trace_derived(sc)
    assert all(isinstance(v, str) and v.startswith("from the trace") for v in raw.values())
