"""About page: what the twin is and the two loading paths."""

from dualpath_twin.ui import about_page

about_page.render()
