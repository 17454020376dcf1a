"""Live run page."""

from dualpath_twin.ui import run_page

run_page.render()
