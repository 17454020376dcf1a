"""Results page (history and per-run detail)."""

from dualpath_twin.ui import results_page

results_page.render()
