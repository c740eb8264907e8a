"""The flood forecast the warnings are issued from.

Warning services warn from a forecast, not from the water they see.  Here the
forecast is the same hazard (rain, river inflows, drains) run without any
response on a grid ``factor`` times coarser than the scenario's, as a
forecaster's quicker model would be; its arrival time (first depth above
0.1 m) per cell is when the warning service expects water.  The hazard does
not depend on the seed, so the forecast is computed once per hazard and
cached on disk (``~/.cache/twin/forecasts``, or ``$TWIN_CACHE_DIR/forecasts``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from models.flood import boundaries, hydraulics, simulate, sources
from models.flood import field as flood_field
from models.flood.field import DesignStorm, DrainageDesign, FloodField
from twin.fileio import atomic_write


@dataclass
class Forecast:
    """Forecast arrival time (s, inf where water never arrives) and maximum depth (m) on the forecast grid."""

    arrival_s: np.ndarray
    max_depth_m: np.ndarray
    transform: Affine

    def arrival_at(self, x: np.ndarray, y: np.ndarray, radius_cells: int = 1) -> np.ndarray:
        """Earliest forecast arrival within ``radius_cells`` of each point (s; inf if none)."""
        a = self.arrival_s
        if radius_cells > 0:
            from scipy.ndimage import minimum_filter

            a = minimum_filter(a, size=2 * radius_cells + 1, mode="nearest")
        col, row = ~self.transform @ (np.asarray(x, float), np.asarray(y, float))
        r, c = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
        inside = (r >= 0) & (r < a.shape[0]) & (c >= 0) & (c < a.shape[1])
        out = np.full(r.shape, np.inf)
        out[inside] = a[r[inside], c[inside]]
        return out


#: The modules whose code decides a forecast's numbers: a change to any of them makes a new one.
_SOLVER_CODE = (hydraulics, sources, boundaries, simulate, flood_field)


def _cache_dir() -> Path:
    base = os.environ.get("TWIN_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "twin") / "forecasts"


def _key(run: FloodField, factor: int, horizon_s: float, manning_n: float, infiltration: str,
         drainage: DrainageDesign | None, design_storm: DesignStorm | None) -> str:
    """Hash of everything the forecast depends on: input files, grid, settings and the solver's code."""
    record: dict[str, Any] = {
        "inputs": {k: (v["sha256"] if isinstance(v, dict) else [h["sha256"] for h in v])
                   for k, v in run.prep.inputs.items()},
        "coarsen": run.prep.domain.factor * factor, "horizon_s": horizon_s, "manning_n": manning_n,
        "infiltration": infiltration,
        "drainage": None if drainage is None else {**asdict(drainage), "formula": None if drainage.formula is None
                                                   else asdict(drainage.formula)},
        "design_storm": None if design_storm is None else asdict(design_storm),
        "solver": {m.__name__: hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest() for m in _SOLVER_CODE},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]


def flood_forecast(city: Any, run: FloodField, *, factor: int, horizon_s: float, manning_n: float,
                   infiltration: str, drainage: DrainageDesign | None, design_storm: DesignStorm | None = None,
                   step_s: float = 300.0) -> Forecast:
    """The hazard without response to ``horizon_s`` on cells ``factor`` times those of ``run``.

    Read from the cache when it is there (the key comes from the inputs ``run``
    has already read); otherwise the coarse grid is read and run once.
    """
    path = _cache_dir() / f"{_key(run, factor, horizon_s, manning_n, infiltration, drainage, design_storm)}.npz"
    transform = run.prep.domain.transform @ Affine.scale(factor, factor)
    if path.is_file():
        with np.load(path) as data:
            return Forecast(data["arrival_s"], data["max_depth_m"], transform)
    field = FloodField.build(city, coarsen=run.prep.domain.factor * factor, duration_s=horizon_s,
                             manning_n=manning_n, infiltration=infiltration, drainage=drainage,
                             design_storm=design_storm)
    t = 0.0
    while t < horizon_s - 1e-9:
        dt = min(step_s, horizon_s - t)
        field.advance(dt, [])
        t += dt
    arrival = np.where(np.isnan(field.sim.arrival_time_s), np.inf, field.sim.arrival_time_s).astype(np.float64)
    forecast = Forecast(arrival, np.asarray(field.sim.max_depth, dtype=np.float32), field.prep.domain.transform)
    with atomic_write(path, binary=True) as fh:
        np.savez_compressed(fh, arrival_s=forecast.arrival_s, max_depth_m=forecast.max_depth_m)
    return forecast
