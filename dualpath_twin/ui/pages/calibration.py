"""Calibration page: delegates to dualpath_twin/ui/calibration_page.py."""

from dualpath_twin.ui import calibration_page

calibration_page.render()
