"""``dualpath-twin calibrate``: fit the twin's efficiency fields to measurements of a real cluster.

``measurements`` reads and validates the measurement file, ``fit`` runs the least-squares fit on
the predictions of ``analysis/microbench.py`` and writes the calibration TOML a scenario includes
(``calibration = "calibration.toml"``), ``cli`` is the command. See docs/calibration.md.
"""

from __future__ import annotations

from dualpath_twin.calibration.fit import CalibrationResult, FieldFit, PointFit, fit, predict_all
from dualpath_twin.calibration.measurements import (
    CalibrationError,
    MeasurementSet,
    default_fit_paths,
    fittable_paths,
    load,
    parse,
)

__all__ = [
    "CalibrationError",
    "CalibrationResult",
    "FieldFit",
    "MeasurementSet",
    "PointFit",
    "default_fit_paths",
    "fit",
    "fittable_paths",
    "load",
    "parse",
    "predict_all",
]
