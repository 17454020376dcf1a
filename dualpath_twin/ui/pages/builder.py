"""Scenario builder page."""

from dualpath_twin.ui import builder

builder.render()
