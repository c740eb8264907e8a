"""Vector readers: GeoPackage, Shapefile (also zipped), GeoJSON, FlatGeobuf and
anything else GDAL reads, reprojected to the project CRS."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from pyproj import CRS

from twin.errors import input_error

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".zip", ".gml", ".kml", ".sqlite", ".parquet")


def list_vector_layers(path: str | Path) -> list[str]:
    """Names of the layers inside a multi-layer source (a GeoPackage, say)."""
    import pyogrio

    return [str(row[0]) for row in pyogrio.list_layers(_gdal_path(Path(path)))]


def _gdal_path(path: Path) -> str:
    return f"zip://{path}" if path.suffix.lower() == ".zip" else str(path)


def read_vector(path: str | Path, *, layer: str | None = None, dst_crs: CRS | None = None) -> gpd.GeoDataFrame:
    """Read a vector layer; reproject to ``dst_crs`` when given.

    A source with several layers needs ``layer``; one without a CRS is an
    error (guessing a CRS would put the data in the wrong place silently).
    """
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    path = Path(path)
    if not path.exists():
        raise input_error(path, "", "file not found; check the path")
    if path.suffix.lower() == ".parquet":
        frame = gpd.read_parquet(path)
    else:
        gdal_path = _gdal_path(path)
        try:
            layers = [str(r[0]) for r in pyogrio.list_layers(gdal_path)]
        except (DataSourceError, DataLayerError) as exc:
            raise input_error(path, "", f"not a readable vector file ({_short(exc)}); expected GeoPackage, "
                              "Shapefile, GeoJSON, FlatGeobuf or another format GDAL reads") from None
        if not layers:
            raise input_error(path, "", "the file holds no layers")
        if layer is None and len(layers) > 1:
            raise input_error(path, "layer", f"the file has {len(layers)} layers ({', '.join(layers)}); name one with layer = \"...\"")
        if layer is not None and layer not in layers:
            raise input_error(path, "layer", f"no layer {layer!r}; the file has: {', '.join(layers)}")
        try:
            frame = pyogrio.read_dataframe(gdal_path, layer=layer or layers[0])
        except (DataSourceError, DataLayerError) as exc:
            raise input_error(path, "", f"could not read features ({_short(exc)})") from None
    if frame.crs is None:
        raise input_error(path, "crs", "the layer has no coordinate reference system; add one (a .prj for a "
                          "Shapefile) or convert it, e.g. ogr2ogr -a_srs EPSG:XXXX")
    if dst_crs is not None and CRS.from_user_input(frame.crs) != dst_crs:
        frame = frame.to_crs(dst_crs)
    return frame


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
