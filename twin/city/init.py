"""Create a city folder from an OSM extract and/or a DEM (``twin city init``).

With ``bbox_lonlat`` the region is cut out of the inputs (complete ways for
OSM, a window for the DEM), so a city centre can be taken from a country
extract.  Everything is written to a temporary folder first and moved into
place at the end: a failed init leaves no half-made city behind.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import tomli_w

from twin.errors import input_error
from twin.geo.manifest import read_manifest

STANDARD_OSM_LAYERS = [
    {"name": "Roads", "role": "roads", "group": "Transport", "osm_tags": {"highway": True}},
    {"name": "Buildings", "role": "buildings", "group": "Buildings", "osm_tags": {"building": True}},
    {"name": "Land use", "role": "landuse", "group": "Land",
     "osm_tags": {"landuse": True, "leisure": ["park", "garden", "pitch", "playground", "stadium", "golf_course",
                                               "nature_reserve", "sports_centre"]}},
    {"name": "Natural", "role": "natural", "group": "Land", "osm_tags": {"natural": True}},
    {"name": "Water", "role": "water", "group": "Water", "osm_tags": {"water": True, "waterway": True}},
    {"name": "Points of interest", "role": "pois", "group": "Points of interest",
     "osm_tags": {"amenity": ["hospital", "fire_station", "police", "school", "parking", "shelter"],
                  "leisure": ["stadium"], "emergency": ["assembly_point"]}},
]


def _bbox_polygon_geojson(bbox_lonlat: tuple[float, float, float, float], name: str, source: str) -> dict:
    x0, y0, x1, y1 = bbox_lonlat
    # Points along each edge, so that the box keeps its lon/lat shape once projected
    # (a straight projected edge would cut off up to ~0.3 m over 5 km).
    steps = [i / 64 for i in range(64)]
    ring = ([[x0 + (x1 - x0) * t, y0] for t in steps] + [[x1, y0 + (y1 - y0) * t] for t in steps]
            + [[x1 - (x1 - x0) * t, y1] for t in steps] + [[x0, y1 - (y1 - y0) * t] for t in steps] + [[x0, y0]])
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": name, "source": source},
        "geometry": {"type": "Polygon", "coordinates": [ring]}}]}


def _crop_dem(src: Path, dst: Path, bbox_lonlat: tuple[float, float, float, float]) -> None:
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    with rasterio.open(src) as ds:
        if ds.crs is None:
            raise input_error(src, "crs", "the DEM has no CRS; assign one before cropping")
        bounds = transform_bounds("EPSG:4326", ds.crs, *bbox_lonlat)
        window = from_bounds(*bounds, transform=ds.transform).round_offsets().round_lengths()
        window = window.intersection(rasterio.windows.Window(0, 0, ds.width, ds.height))
        data = ds.read(window=window)
        profile = ds.profile.copy()
        profile.update(width=window.width, height=window.height, transform=ds.window_transform(window),
                       compress="deflate", tiled=True, blockxsize=256, blockysize=256)
        if window.width < 256 or window.height < 256:
            profile.update(tiled=False)
            profile.pop("blockxsize"), profile.pop("blockysize")
        with rasterio.open(dst, "w", **profile) as out:
            out.write(data)


def init_city(folder: Path, *, name: str, osm: Path | None = None, dem: Path | None = None,
              bbox_lonlat: tuple[float, float, float, float] | None = None, crs: str = "utm",
              force: bool = False) -> Path:
    """Write ``folder`` with the data files and a ``city.toml``; returns the manifest path."""
    folder = Path(folder)
    for given, label in ((osm, "--osm"), (dem, "--dem")):
        if given is not None and not Path(given).exists():
            raise input_error(given, label, "file not found")
    if folder.exists() and any(folder.iterdir()) and not force:
        raise input_error(folder, "", "the folder exists and is not empty; choose a new folder or pass --force")
    tmp = folder.with_name(folder.name + f".tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        layers: list[dict] = []
        attribution: list[str] = []
        boundary_source = None
        if osm is not None:
            from twin.geo.osm import crop_osm, osm_header

            osm = Path(osm)
            suffix = ".osm.pbf" if osm.name.endswith(".pbf") else ".osm"
            target = tmp / f"{folder.name}{suffix}"
            if bbox_lonlat is not None:
                crop_osm(osm, target, bbox_lonlat)
            else:
                shutil.copyfile(osm, target)
            header = osm_header(target)
            for spec in STANDARD_OSM_LAYERS:
                layers.append({**spec, "source": target.name})
            stamp = f" (data as of {header['timestamp'][:10]})" if header.get("timestamp") else ""
            attribution.append(f"© OpenStreetMap contributors, ODbL 1.0{stamp}")
            box = bbox_lonlat or header.get("bbox_lonlat")
            if box is not None:
                boundary_source = "the --bbox given to twin city init" if bbox_lonlat else "the bounding box in the OSM file header"
                (tmp / "boundary.geojson").write_text(json.dumps(_bbox_polygon_geojson(box, f"{name} extent", boundary_source)))
        if dem is not None:
            dem = Path(dem)
            target = tmp / "dem.tif"
            if bbox_lonlat is not None:
                _crop_dem(dem, target, bbox_lonlat)
            else:
                shutil.copyfile(dem, target)
            layers.append({"name": "Terrain", "role": "dem", "group": "Terrain", "source": target.name, "units": "m"})
            attribution.append(f"Terrain: {dem.name} (state its source and licence here)")
            if boundary_source is None and bbox_lonlat is not None:
                boundary_source = "the --bbox given to twin city init"
                (tmp / "boundary.geojson").write_text(json.dumps(_bbox_polygon_geojson(bbox_lonlat, f"{name} extent", boundary_source)))
        if boundary_source is not None:
            layers.insert(0, {"name": "Boundary", "role": "boundary", "group": "Boundaries", "source": "boundary.geojson"})
        manifest = {
            "city": {"name": name, "crs": crs, "terrain": "dem" if dem is not None else "flat",
                     "default_land_class": "20", "attribution": attribution},
            "layers": layers,
        }
        with open(tmp / "city.toml", "wb") as fh:
            tomli_w.dump(manifest, fh)
        read_manifest(tmp / "city.toml")
        folder.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():
            os.replace(item, folder / item.name)
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder / "city.toml"
