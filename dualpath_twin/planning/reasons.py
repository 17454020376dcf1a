"""Capacity-search verdicts a planner can act on: which failing runs a longer arrival window would settle, and how.

The rule itself (``SloCriterion.check``) says "steadiness unknown ... (lengthen the window)" when one of
the two ``run.online_window_s`` windows before the last arrival holds too few rounds to tell whether
TTFT is rising. Fewer agents in flight means fewer rounds per window, and the agents in flight grow
with the arrival window (``--window-s`` on the CLI, "Arrival window (s)" on the dashboard): these
helpers name that setting, with the value the search used and one to try, without changing the rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

STEADINESS_UNKNOWN = "steadiness unknown"
"""How ``SloCriterion.check`` starts the reason of a run whose windows hold too few rounds."""

OUTLIVE = "outlive the arrival window"
"""Part of the reason of a run whose active agents still grew (agents outlive the arrival window)."""

CLI_WINDOW = "--window-s"
DASHBOARD_WINDOW = "'Arrival window (s)' in New capacity search (--window-s on the CLI)"


def needs_longer_window(reason: str) -> bool:
    """True when the run failed because its arrival window was too short to judge or reach steady state."""
    return STEADINESS_UNKNOWN in reason or OUTLIVE in reason


def actionable_reason(reason: str, setting: str = CLI_WINDOW) -> str:
    """The reason naming the setting that lengthens the arrival window ('(lengthen the window: --window-s)')."""
    if not needs_longer_window(reason) or setting in reason:
        return reason
    for vague in ("(lengthen the window)", "lengthen it)"):
        if reason.endswith(vague):
            head = reason[: -len(vague)]
            return f"{head}{'(' if vague.startswith('(') else ''}lengthen the arrival window: {setting})"
    return f"{reason}; lengthen the arrival window ({setting})"


def window_advice(policy: str, points: Iterable[Any], window_s: float | None, setting: str = CLI_WINDOW,
                  online_window_s: float | None = None) -> str | None:
    """One sentence on the runs of ``policy`` a longer arrival window would settle (None when there are none).

    ``points`` are the search's CapacityPoints (anything with ``aps``, ``meets`` and ``reason``); ``window_s``
    the arrival window the search used; ``online_window_s`` the scenario's ``run.online_window_s``, when
    known: the two measured windows must fit in the arrival window after a warm-up, so the advice is
    at least the window plus those two.
    """
    pts = list(points)
    hit = [p for p in pts if not p.meets and needs_longer_window(p.reason)]
    if not hit:
        return None
    rates = ", ".join(f"{p.aps:.4g}" for p in sorted(hit, key=lambda p: p.aps))
    unknown = sum(STEADINESS_UNKNOWN in p.reason for p in hit)
    what = (
        "too few rounds reached their first token in a steadiness window to tell whether TTFT is rising"
        if unknown == len(hit)
        else "the runs could not show a steady state within their arrival window"
    )
    longer = max(2 * window_s, window_s + 2 * online_window_s) if window_s and online_window_s else \
        (2 * window_s if window_s else None)
    fix = (f"set {setting} to 0 (automatic: the agent population's warm-up plus the two measured windows) or to "
           f"{longer:g} s or more (now {window_s:g} s)" if longer else f"lengthen the arrival window ({setting})")
    return (
        f"{policy}: {len(hit)} of {len(pts)} run(s) failed only for want of a longer window, at {rates} agents/s: "
        f"{what}. These rates are not proven over capacity: {fix} and search again."
    )


class ReasonLog:
    """A live search log's reasons: a long reason is written out once; a later identical one says 'as above'.

    A search whose window is too short repeats the same sentence on every rate; the log keeps each
    rate's line short after the first without losing what it said.
    """

    def __init__(self, long_chars: int = 80) -> None:
        self.long_chars = long_chars
        self.seen: set[str] = set()

    def __call__(self, reason: str) -> str:
        """The reason to print on this line: whole the first time, its head plus ': as above' when repeated."""
        if len(reason) <= self.long_chars or reason not in self.seen:
            self.seen.add(reason)
            return reason
        head = reason.split(":", 1)[0] if ":" in reason else reason[: self.long_chars]
        return f"{head}: as above"
