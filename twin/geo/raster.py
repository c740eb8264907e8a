"""Raster grids (DEM, land cover, zone masks) as NumPy arrays with their georeference.

A :class:`Grid` is what the models get: a 2D array in the project CRS, row 0 at
the top (north), cell centres at ``transform * (col + 0.5, row + 0.5)``, nodata
as NaN for float grids.  Reading goes through rasterio, so any GDAL raster works,
GeoTIFF and Cloud-Optimised GeoTIFF included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import CRS

from twin.errors import input_error


@dataclass
class Grid:
    """A georeferenced 2D array in a metric CRS.

    ``values`` is float32 with NaN for nodata (continuous data) or an integer
    array with ``nodata`` set (categorical data such as land cover codes).
    """

    values: np.ndarray
    transform: Affine
    crs: CRS
    name: str = ""
    units: str = ""
    nodata: float | int | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape  # type: ignore[return-value]

    @property
    def cell_size(self) -> tuple[float, float]:
        """Cell width and height in CRS units (both positive)."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def cell_area(self) -> float:
        dx, dy = self.cell_size
        return dx * dy

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the grid's outer edges."""
        rows, cols = self.shape
        t = self.transform
        x0, y0 = t.c, t.f
        x1, y1 = t.c + t.a * cols + t.b * rows, t.f + t.d * cols + t.e * rows
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def valid_mask(self) -> np.ndarray:
        """True where the cell holds data."""
        v = self.values
        if np.issubdtype(v.dtype, np.floating):
            return ~np.isnan(v)
        if self.nodata is None:
            return np.ones(v.shape, dtype=bool)
        return v != self.nodata

    def rowcol(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer row and column of the cells containing points (may fall outside)."""
        inv = ~self.transform
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        cols = inv.a * x + inv.b * y + inv.c
        rows = inv.d * x + inv.e * y + inv.f
        return np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Value of the cell under each point; NaN (or nodata) outside the grid."""
        rows, cols = self.rowcol(x, y)
        h, w = self.shape
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        if np.issubdtype(self.values.dtype, np.floating):
            out = np.full(rows.shape, np.nan, dtype=self.values.dtype)
        else:
            fill = self.nodata if self.nodata is not None else 0
            out = np.full(rows.shape, fill, dtype=self.values.dtype)
        out[inside] = self.values[rows[inside], cols[inside]]
        return out

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x (cols,) and y (rows,) of cell centres for a north-up grid."""
        rows, cols = self.shape
        t = self.transform
        xs = t.c + t.a * (np.arange(cols) + 0.5)
        ys = t.f + t.e * (np.arange(rows) + 0.5)
        return xs, ys


def read_grid(
    path: str | Path,
    *,
    dst_crs: CRS | None = None,
    band: int = 1,
    categorical: bool = False,
    name: str = "",
    units: str = "",
    bbox: tuple[float, float, float, float] | None = None,
) -> Grid:
    """Read one band of a raster, reprojected to ``dst_crs`` when it differs.

    ``categorical`` rasters (land cover, zone masks) are resampled by nearest
    neighbour and kept as integers; continuous ones (DEM) bilinearly, as float32
    with NaN nodata.  ``bbox`` (in ``dst_crs``) crops to a window first.
    """
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    path = Path(path)
    if not path.exists():
        raise input_error(path, "", "file not found; check the path in the city manifest")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise input_error(path, "", f"not a readable raster ({exc}); expected a GeoTIFF or another GDAL raster") from None
    with src:
        if src.crs is None:
            raise input_error(path, "crs", "the raster has no coordinate reference system; assign one (e.g. gdal_edit.py -a_srs EPSG:XXXX)")
        if band < 1 or band > src.count:
            raise input_error(path, "band", f"band {band} does not exist (the file has {src.count})")
        src_crs = CRS.from_user_input(src.crs.to_wkt())
        target = dst_crs or src_crs
        nodata = src.nodata
        same_crs = src_crs == target
        if same_crs:
            window = None
            transform = src.transform
            if bbox is not None:
                from rasterio.windows import from_bounds

                window = from_bounds(*bbox, transform=src.transform).round_offsets().round_lengths()
                window = window.intersection(rasterio.windows.Window(0, 0, src.width, src.height))
                transform = src.window_transform(window)
            data = src.read(band, window=window)
        else:
            transform, width, height = calculate_default_transform(
                src.crs, target.to_wkt(), src.width, src.height, *src.bounds
            )
            fill = nodata if nodata is not None else (0 if categorical else np.nan)
            data = np.full((height, width), fill, dtype=src.dtypes[band - 1] if categorical else np.float32)
            reproject(
                source=rasterio.band(src, band),
                destination=data,
                src_transform=src.transform,
                src_crs=src.crs,
                src_nodata=nodata,
                dst_transform=transform,
                dst_crs=target.to_wkt(),
                dst_nodata=fill,
                resampling=Resampling.nearest if categorical else Resampling.bilinear,
            )
        if categorical:
            values, nodata_out = _as_categorical(data, nodata)
        else:
            values = data.astype(np.float32, copy=False)
            if nodata is not None and not np.isnan(nodata):
                values = np.where(values == np.float32(nodata), np.nan, values).astype(np.float32)
            nodata_out = None
            # Some products use a huge negative sentinel without declaring it.
            values[values < -1e30] = np.nan
        return Grid(values=values, transform=transform, crs=target, name=name or path.stem,
                    units=units, nodata=nodata_out, source=str(path))


def _as_categorical(data: np.ndarray, nodata: float | None) -> tuple[np.ndarray, int]:
    """Class codes as int32 with -1 for nodata (NaN, declared nodata, huge sentinels)."""
    bad = np.zeros(data.shape, dtype=bool)
    if np.issubdtype(data.dtype, np.floating):
        bad |= ~np.isfinite(data) | (data < -1e30)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        bad |= data == nodata
    out = np.where(bad, -1, np.round(np.where(bad, 0, data))).astype(np.int32)
    return out, -1
