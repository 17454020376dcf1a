"""One colour per design, everywhere: dashboard pages, live plots, reports and planning figures.

Every figure builder and page takes its policy colours from here (``policy_color``), so Basic is
the same red on the capacity chart, Compare, Results, Live run, the HTML/PDF report and the
planning charts. ``CHIP`` gives the nearest Streamlit markdown colour name for text chips.
"""

from __future__ import annotations

POLICY_COLORS: dict[str, str] = {
    "basic": "#E45756",  # red
    "layerwise": "#F58518",  # orange
    "dualpath-split": "#72B7B2",  # teal; before "dualpath": names inside labels are matched in this order
    "dualpath": "#4C78A8",  # blue
    "oracle": "#54A24B",  # green
}
"""Design (policy name) -> hex colour."""

CHIP: dict[str, str] = {"basic": "red", "layerwise": "orange", "dualpath-split": "violet", "dualpath": "blue",
                        "oracle": "green"}  # fmt: skip
"""Design -> Streamlit markdown colour (``:red-background[...]``) closest to :data:`POLICY_COLORS`."""

FALLBACK: list[str] = ["#B279A2", "#FF9DA6", "#9D755D", "#EECA3B", "#BAB0AC", "#7F7F7F"]
"""Colours for runs that are not a known design (never one of :data:`POLICY_COLORS`)."""

MEETS = "#54A24B"
FAILS = "#E45756"
NEUTRAL = "#BAB0AC"
"""Pass / fail / other markers (SLO met, missed, pruned)."""


def policy_of(label: str) -> str:
    """The design a label names: the label itself or the first design name inside it ('' if none)."""
    if label in POLICY_COLORS:
        return label
    low = label.lower()
    for p in POLICY_COLORS:
        if p in low:
            return p
    return ""


def policy_color(label: str, index: int = 0) -> str:
    """The colour of a design (or of the design named inside a label); a fallback colour by ``index`` otherwise."""
    p = policy_of(label)
    return POLICY_COLORS[p] if p else FALLBACK[index % len(FALLBACK)]
