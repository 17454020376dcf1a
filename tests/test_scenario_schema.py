"""Schema errors name the dotted path and the fix; --set overrides parse values and reject bad paths."""

from __future__ import annotations

import pytest

from dualpath_twin import scenario as scn


def _problems(toml: str) -> list[str]:
    with pytest.raises(scn.ScenarioError) as e:
        scn.from_toml(toml, source="bad.toml", check_catalog=False)
    assert "bad.toml" in str(e.value)  # the file is named
    return e.value.problems


@pytest.mark.parametrize(
    ("toml", "path", "fragment"),
    [
        ("[network]\nsnic_gbps = -400.0", "network.snic_gbps = -400.0", "greater than 0"),
        ("[network]\ncnic_gbps = 0", "network.cnic_gbps = 0", "greater than 0"),
        ("[cluster]\nprefill_nodes = 0", "cluster.prefill_nodes = 0", "greater than or equal to 1"),
        ("[cluster]\ndecode_nodes = 0", "cluster.decode_nodes = 0", "greater than or equal to 1"),
        ("[cluster]\nprefill_nodes = 'two'", "cluster.prefill_nodes = 'two'", "integer"),
        ("[workload]\nagents = 1.5", "workload.agents = 1.5", "integer"),
        ("[network]\ndram_gbps = nan", "network.dram_gbps", "finite number"),
        ("[network]\nsnic_gbps = inf", "network.snic_gbps", "finite"),
        ("[policy]\nname = 'fastest'", "policy.name = 'fastest'", "one of"),
        ("[workload]\nmode = 'batch'", "workload.mode = 'batch'", "one of"),
        (
            "[workload.tool_latency_s]\nkind = 'uniform'\nlow = 5.0\nhigh = 1.0",
            "workload.tool_latency_s",
            "high >= low",
        ),
    ],
)
def test_schema_errors_name_the_dotted_path(toml: str, path: str, fragment: str) -> None:
    problems = _problems(toml)
    assert len(problems) == 1, problems
    assert problems[0].startswith(path), problems
    assert fragment in problems[0], problems


def test_unknown_keys_get_suggestions() -> None:
    problems = _problems("[cluster]\nprefil_nodes = 3\n[netwrk]\nsnic_gbps = 1.0")
    assert any(
        p.startswith("cluster.prefil_nodes: unknown key") and "did you mean prefill_nodes" in p
        for p in problems
    )
    assert any(p.startswith("netwrk: unknown key") and "network" in p for p in problems)


def test_all_problems_reported_at_once() -> None:
    problems = _problems("[cluster]\nprefill_nodes = 0\n[network]\nsnic_gbps = -1.0\ncnic_gbps = nan")
    heads = sorted(p.split(" ")[0] for p in problems)
    assert heads == ["cluster.prefill_nodes", "network.cnic_gbps", "network.snic_gbps"]


def test_toml_syntax_error_is_a_scenario_error() -> None:
    problems = _problems("[cluster\nprefill_nodes = 2")
    assert "TOML syntax error" in problems[0]


def test_missing_file_is_a_scenario_error(tmp_path) -> None:
    with pytest.raises(scn.ScenarioError, match="file not found"):
        scn.load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4", 4),
        ("2.5", 2.5),
        ("true", True),
        ('"DS-27B"', "DS-27B"),
        ("DS-27B", "DS-27B"),  # bare words are strings
        ("1e-3", 0.001),
        ("[1, 2]", [1, 2]),
    ],
)
def test_set_values_parse_as_toml_literals(text: str, value: object) -> None:
    assert scn.parse_value(text) == value


def test_set_overrides_apply_and_validate() -> None:
    sc = scn.Scenario()
    items = [
        "cluster.prefill_nodes=4",
        "network.snic_gbps = 800",
        "model.name=DS-27B",
        "workload.tool_latency_s.mean=2.5",
        "workload.mode=online",
        "run.seed=7",
    ]
    new = scn.apply_overrides(sc, scn.parse_assignments(items), check_catalog=False)
    assert new.cluster.prefill_nodes == 4 and new.network.snic_gbps == 800.0
    assert new.model.name == "DS-27B" and new.workload.tool_latency_s.mean == 2.5
    assert new.workload.mode == "online" and new.run.seed == 7
    assert sc.cluster.prefill_nodes == 2  # the original is untouched


def test_set_rejects_unknown_paths_with_suggestions() -> None:
    with pytest.raises(scn.ScenarioError) as e:
        scn.apply_overrides(
            scn.Scenario(), {"cluster.prefil_nodes": 3, "network.sinc_gbps": 1.0}, check_catalog=False
        )
    msg = str(e.value)
    assert "cluster.prefil_nodes: unknown scenario path; did you mean cluster.prefill_nodes" in msg
    assert "did you mean network.snic_gbps" in msg


def test_set_rejects_bad_values_and_malformed_items() -> None:
    with pytest.raises(scn.ScenarioError) as e:
        scn.apply_overrides(scn.Scenario(), {"network.snic_gbps": -5}, check_catalog=False)
    assert e.value.problems[0].startswith("network.snic_gbps = -5")
    with pytest.raises(scn.ScenarioError, match="expected path=value"):
        scn.parse_assignments(["cluster.prefill_nodes"])


def test_all_paths_cover_the_documented_fields() -> None:
    paths = set(scn.all_paths())
    for p in (
        "cluster.prefill_nodes", "cluster.gpu", "cluster.dram_buffer_gb", "network.snic_gbps",
        "network.kv_lane_share", "network.fabric_oversubscription", "storage.read_gbps_total",
        "storage.block_tokens", "model.name", "workload.trace_path", "workload.tool_latency_s.kind",
        "policy.alpha_s", "policy.z_factor", "slo.tpot_ms", "run.sample_interval_s",
    ):  # fmt: skip
        assert p in paths
