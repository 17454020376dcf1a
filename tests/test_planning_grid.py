"""Grid parsing and expansion for sweeps and sizing."""

from __future__ import annotations

import pytest

from dualpath_twin.planning.grid import (
    PlanningError,
    expand_grid,
    parse_grid,
    parse_range,
    parse_values,
    point_key,
)


def test_lists_and_ranges() -> None:
    assert parse_values("1,2,4") == [1, 2, 4]
    assert parse_values("1..8") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert parse_values("100..800x2") == [100, 200, 400, 800]
    assert parse_values("100..900x2") == [100, 200, 400, 800]
    assert parse_values("1..9+2") == [1, 3, 5, 7, 9]
    assert parse_values("0.5..2x2") == [0.5, 1.0, 2.0]
    assert parse_values("0.1..0.5+0.1") == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert parse_values("1,2,2..4") == [1, 2, 3, 4]  # duplicates dropped, order kept
    assert parse_values("basic,dualpath") == ["basic", "dualpath"]
    assert parse_range("3..3") == [3]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("5..1", "empty range"), ("1..8x1", "factor must be > 1"), ("0..8x2", "start above 0"),
     ("a..3", "not a number"), ("1..3+0", "step must be > 0"), ("1,,2", "empty value"), ("1..1000000", "limit")],
)
def test_bad_ranges_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(PlanningError, match=fragment):
        parse_values(text, f"x={text}")


def test_parse_grid_and_expand() -> None:
    g = parse_grid(["cluster.prefill_nodes=1..2", "network.snic_gbps=200..800x2"])
    assert g == {"cluster.prefill_nodes": [1, 2], "network.snic_gbps": [200, 400, 800]}
    pts = expand_grid(g)
    assert len(pts) == 6
    assert pts[0] == {"cluster.prefill_nodes": 1, "network.snic_gbps": 200}
    assert pts[1] == {"cluster.prefill_nodes": 1, "network.snic_gbps": 400}  # first axis slowest
    assert expand_grid({}) == [{}]


def test_parse_grid_errors() -> None:
    with pytest.raises(PlanningError, match="expected path=values"):
        parse_grid(["cluster.prefill_nodes"])
    with pytest.raises(PlanningError, match="did you mean cluster.prefill_nodes"):
        parse_grid(["cluster.prefil_nodes=1,2"])
    with pytest.raises(PlanningError, match="given twice"):
        parse_grid(["cluster.prefill_nodes=1", "cluster.prefill_nodes=2"])


def test_point_key_is_canonical() -> None:
    a = point_key({"b": 1, "a": 2.5}, "basic")
    b = point_key({"a": 2.5, "b": 1}, "basic")
    assert a == b and a != point_key({"a": 2.5, "b": 1}, "dualpath")
