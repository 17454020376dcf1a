"""Compare page (selected runs side by side)."""

from dualpath_twin.ui import compare_page

compare_page.render()
