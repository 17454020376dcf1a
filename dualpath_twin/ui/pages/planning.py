"""Planning page: delegates to dualpath_twin/ui/planning_page.py (written by the planning engineer)."""

from dualpath_twin.ui import planning_page

render = getattr(planning_page, "render", None) or getattr(planning_page, "main", None)
if callable(render):
    render()
