"""Load times of the sample cities: first load, cached load, and the naive path.

The naive path is what a script would do without Twin: pyrosm straight to
GeoDataFrames for OSM (network, buildings, land use, POIs) and geopandas /
rasterio reads for files.  Everything is measured in this run, on this machine;
the ratios are what to watch.

    .venv/bin/python bench/load_city.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITIES = ("monaco", "helsinki", "carlisle")


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def naive_load(folder: Path) -> None:
    """Read every source the plain way, without checks, network arrays or caching."""
    import geopandas as gpd
    import rasterio

    from twin.geo.manifest import read_manifest

    manifest = read_manifest(folder)
    done_osm: set[Path] = set()
    for spec in manifest.layers:
        path = manifest.source_path(spec)
        if spec.is_osm:
            if path in done_osm:
                continue
            done_osm.add(path)
            import pyrosm

            osm = pyrosm.OSM(str(path))
            osm.get_network(network_type="driving", nodes=True)
            osm.get_buildings()
            osm.get_landuse()
            osm.get_natural()
            osm.get_pois(custom_filter={"amenity": ["hospital", "fire_station", "police", "school", "parking"],
                                        "leisure": ["stadium"]})
        elif spec.kind == "raster":
            with rasterio.open(path) as src:
                src.read(1)
        elif spec.kind == "vector":
            gpd.read_file(path, layer=spec.layer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from twin.city.city import load_city

    print(f"{'city':<10} {'first load s':>13} {'cached s':>9} {'naive s':>9} {'first/naive':>12} {'cached/naive':>13}")
    for name in CITIES:
        folder = ROOT / "gis_data" / name
        firsts, cached = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as cache:
                t = time.perf_counter()
                load_city(folder, cache_root=Path(cache))
                firsts.append(time.perf_counter() - t)
                cached.append(_best(lambda: load_city(folder, cache_root=Path(cache)), 1))
        naive = _best(lambda: naive_load(folder), args.repeat)
        first, cache_t = min(firsts), min(cached)
        print(f"{name:<10} {first:13.3f} {cache_t:9.3f} {naive:9.3f} {first / naive:12.2f} {cache_t / naive:13.2f}")
    print("ratios < 1 are faster than the naive path; the naive path builds no network arrays, "
          "checks no geometry and derives no land classes")


if __name__ == "__main__":
    main()
