"""Grids on one raster: land cover and zone masks resampled onto the DEM grid,
and land classes rasterised at a chosen resolution for cities without one."""

from __future__ import annotations

import numpy as np
from affine import Affine

from twin.geo.raster import Grid


def same_grid(a: Grid, b: Grid) -> bool:
    return a.shape == b.shape and a.crs == b.crs and np.allclose(tuple(a.transform), tuple(b.transform))


def align_to(grid: Grid, like: Grid) -> Grid:
    """``grid`` resampled onto ``like``'s cells (nearest for integer codes, bilinear for floats)."""
    if same_grid(grid, like):
        return grid
    from rasterio.warp import Resampling, reproject

    categorical = not np.issubdtype(grid.values.dtype, np.floating)
    fill = grid.nodata if categorical else np.nan
    out = np.full(like.shape, fill, dtype=grid.values.dtype)
    reproject(source=grid.values, destination=out, src_transform=grid.transform, src_crs=grid.crs.to_wkt(),
              src_nodata=fill, dst_transform=like.transform, dst_crs=like.crs.to_wkt(), dst_nodata=fill,
              resampling=Resampling.nearest if categorical else Resampling.bilinear)
    return Grid(values=out, transform=like.transform, crs=like.crs, name=grid.name, units=grid.units,
                nodata=grid.nodata, source=grid.source, meta={**grid.meta, "resampled_to": like.name})


def rasterise_classes(geometry_by_code: dict[str, object], bounds: tuple[float, float, float, float],
                      resolution_m: float, crs) -> Grid:
    """Land-class codes (as integers, -1 for none) on a north-up grid of ``resolution_m`` cells."""
    from rasterio.features import rasterize

    xmin, ymin, xmax, ymax = bounds
    cols = max(1, int(np.ceil((xmax - xmin) / resolution_m)))
    rows = max(1, int(np.ceil((ymax - ymin) / resolution_m)))
    transform = Affine(resolution_m, 0, xmin, 0, -resolution_m, ymax)
    shapes = [(geom, int(code)) for code, geom in geometry_by_code.items() if geom is not None and not geom.is_empty]
    values = rasterize(shapes, out_shape=(rows, cols), transform=transform, fill=-1, dtype="int32") if shapes \
        else np.full((rows, cols), -1, dtype=np.int32)
    return Grid(values=values, transform=transform, crs=crs, name="land classes", nodata=-1)
