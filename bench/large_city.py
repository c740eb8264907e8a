"""Time a city the size of Jinan's centre: ``twin city init --bbox``, first and cached load.

Writes a synthetic OSM extract (``bench/synthetic_osm.py``) of about
``--buildings`` buildings over a few kilometres around Jinan, cuts a centred box
holding ``--share`` of its area out of it with ``twin city init --bbox``, then
loads the city twice (derived, then from the cache) and prints the times, the
counts and the per-stage timings of the first load (``City.timings_s``).
Everything is measured in this run, on this machine.

    .venv/bin/python bench/large_city.py [--buildings 40000] [--share 0.7] [--crs utm] [--keep DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_osm import BLOCK_USES, write_synthetic_city  # noqa: E402

BUILT_SHARE = sum(w for name, w in BLOCK_USES if name not in ("park", "pond"))


def _grid_for(buildings: int, per_block: int) -> tuple[int, int]:
    """Blocks east and north for about ``buildings`` buildings (a little wider than tall)."""
    blocks = buildings / (per_block * BUILT_SHARE)
    blocks_y = max(4, round(math.sqrt(blocks / 1.15)))
    return max(4, round(blocks / blocks_y)), blocks_y


def _timed(fn):
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def run(work: Path, buildings: int, per_block: int, share: float, crs: str, seed: int) -> None:
    from twin.city.city import load_city
    from twin.cli.main import main as twin

    blocks_x, blocks_y = _grid_for(buildings, per_block)
    source, t_gen = _timed(lambda: write_synthetic_city(work / "extract.osm.pbf", blocks_x=blocks_x, blocks_y=blocks_y,
                                                        buildings_per_block=per_block, seed=seed))
    box = source.inner_bbox(share)
    print(f"extract: {blocks_x} x {blocks_y} blocks, {source.n_buildings:,} buildings, "
          f"{source.counts['nodes']:,} nodes, {source.counts['ways']:,} ways, "
          f"{source.path.stat().st_size / 1e6:.1f} MB; written in {t_gen:.2f} s")
    folder = work / "jinan"
    argv = ["city", "init", str(folder), "--name", "Jinan centre", "--osm", str(source.path),
            "--bbox", ",".join(repr(v) for v in box), "--crs", crs]
    code, t_init = _timed(lambda: twin(argv))
    if code != 0:
        raise SystemExit(f"twin city init failed with exit code {code}")
    print(f"twin city init --bbox ({share:.0%} of the area): {t_init:.2f} s")

    cache = work / "cache"
    first, t_first = _timed(lambda: load_city(folder, cache_root=cache))
    cached, t_cached = _timed(lambda: load_city(folder, cache_root=cache))
    assert not first.from_cache and cached.from_cache

    net = first.network
    scc = net.largest_strongly_connected()
    lc = first.land_classes
    print(f"city: {len(first.buildings):,} buildings (the box holds {len(source.buildings_touching(box)):,}, "
          f"{len(source.buildings_within(box)):,} wholly), CRS {first.crs.to_string()}")
    print(f"      network {net.n_nodes:,} nodes, {net.n_edges:,} edges, "
          f"largest strongly connected {scc.n_nodes:,} nodes")
    print(f"      POIs {sum(first.pois.counts().values()):,}, land-class closure error {lc.closure_error_m2:.3g} m2 "
          f"of {lc.boundary_area_m2 / 1e6:.3f} km2")
    print(f"first load  {t_first:7.2f} s")
    print(f"cached load {t_cached:7.2f} s")
    print("first load stages (s):")
    for stage, seconds in first.timings_s.items():
        print(f"  {stage:<24} {seconds:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buildings", type=int, default=40_000, help="buildings in the whole extract")
    parser.add_argument("--per-block", type=int, default=25)
    parser.add_argument("--share", type=float, default=0.7, help="share of the extract's area the box keeps")
    parser.add_argument("--crs", default="utm", help='"utm" or e.g. EPSG:4548')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    if args.keep is not None:
        if args.keep.exists() and any(args.keep.iterdir()):
            raise SystemExit(f"{args.keep} is not empty; give a new folder")
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.keep, args.buildings, args.per_block, args.share, args.crs, args.seed)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp), args.buildings, args.per_block, args.share, args.crs, args.seed)


if __name__ == "__main__":
    main()
