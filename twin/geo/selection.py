"""The selection shared by every view: which features of which layer are selected.

Qt-free, with a psygnal signal, so the 2D map, the 3D view and the attribute
table all show the same selection and any of them can change it.
"""

from __future__ import annotations

import numpy as np
from psygnal import Signal


class Selection:
    """Selected row positions (0-based, into the layer's data frame) of one layer at a time."""

    changed = Signal(str, object)  # layer name ("" when cleared), np.ndarray of row positions

    def __init__(self) -> None:
        self.layer: str = ""
        self.rows: np.ndarray = np.empty(0, dtype=np.int64)

    def select(self, layer: str, rows) -> None:
        """Replace the selection; emits ``changed`` only when it really changes."""
        new = np.unique(np.asarray(rows, dtype=np.int64))
        if layer == self.layer and np.array_equal(new, self.rows):
            return
        self.layer, self.rows = (layer if len(new) else ""), new
        self.changed.emit(self.layer, self.rows)

    def clear(self) -> None:
        self.select("", [])

    def contains(self, layer: str, row: int) -> bool:
        return layer == self.layer and bool(np.isin(row, self.rows))
