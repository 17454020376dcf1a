"""The live capacity log writes a long reason out once and shortens its repeats."""

from dualpath_twin.planning.reasons import ReasonLog

LONG = ("steadiness unknown: under 10 rounds reached their first token in one of the last two 150 s windows "
        "before the last arrival (lengthen the arrival window: --window-s)")


def test_a_repeated_long_reason_is_written_once() -> None:
    said = ReasonLog()
    assert said(LONG) == LONG
    assert said(LONG) == "steadiness unknown: as above"
    assert said(LONG) == "steadiness unknown: as above"


def test_short_and_new_reasons_are_written_whole() -> None:
    said = ReasonLog()
    assert said("meets SLO") == "meets SLO"
    assert said("meets SLO") == "meets SLO"  # short: repeating it costs nothing
    other = LONG.replace("10 rounds", "9 rounds")
    said(LONG)
    assert said(other) == other  # a different sentence is news
