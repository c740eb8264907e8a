"""``twin city info`` and ``twin city init``."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from twin.errors import InputError, Problem, input_error


def register(commands: argparse._SubParsersAction) -> None:
    city = commands.add_parser("city", help="inspect or create a city folder")
    sub = city.add_subparsers(dest="city_command", metavar="ACTION")

    info = sub.add_parser("info", help="print a city's layers, counts, CRS, extent, land classes and attribution")
    info.add_argument("folder", type=Path, help="city folder (holding city.toml) or the manifest itself")
    info.add_argument("--no-cache", action="store_true", help="derive everything again, ignoring the cache")
    info.set_defaults(handler=cmd_info)

    init = sub.add_parser("init", help="create a city folder from an OSM extract and/or a DEM")
    init.add_argument("folder", type=Path, help="the new city folder")
    init.add_argument("--name", help="city name (default: the folder name)")
    init.add_argument("--osm", type=Path, help="OpenStreetMap extract (.osm.pbf or .osm)")
    init.add_argument("--dem", type=Path, help="terrain raster (GeoTIFF)")
    init.add_argument("--bbox", help="minlon,minlat,maxlon,maxlat: cut this region out of the inputs")
    init.add_argument("--crs", default="utm", help='project CRS: "utm" (default) or e.g. EPSG:4547')
    init.add_argument("--force", action="store_true", help="write into an existing non-empty folder")
    init.set_defaults(handler=cmd_init)
    city.set_defaults(handler=lambda args: city.print_help() or 2)


def _fmt_area(m2: float) -> str:
    return f"{m2 / 1e6:,.4f} km2" if m2 >= 1e5 else f"{m2:,.0f} m2"


def format_info(city) -> str:
    """The text ``twin city info`` prints."""
    from pyproj import Transformer

    from twin.geo.crs import crs_label
    from twin.geo.raster import Grid

    lines: list[str] = []
    m = city.manifest
    lines.append(f"City: {city.name}")
    lines.append(f"Folder: {m.folder}")
    lines.append(f"CRS: {crs_label(city.crs)}")
    xmin, ymin, xmax, ymax = city.extent()
    to_lonlat = Transformer.from_crs(city.crs, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_lonlat.transform(xmin, ymin)
    lon1, lat1 = to_lonlat.transform(xmax, ymax)
    lines.append(f"Extent: x {xmin:,.1f} .. {xmax:,.1f}, y {ymin:,.1f} .. {ymax:,.1f} "
                 f"({(xmax - xmin) / 1000:.2f} km x {(ymax - ymin) / 1000:.2f} km)")
    lines.append(f"Extent (lon/lat): {lon0:.5f}, {lat0:.5f} .. {lon1:.5f}, {lat1:.5f}")
    if city.boundary is not None:
        lines.append(f"Boundary area: {_fmt_area(city.boundary.area)}")
    if city.dem is not None:
        dem = city.dem
        lines.append(f"Terrain: DEM {dem.shape[1]} x {dem.shape[0]} cells of {dem.cell_size[0]:g} m, "
                     f"{float(__import__('numpy').nanmin(dem.values)):.2f} .. {float(__import__('numpy').nanmax(dem.values)):.2f} m")
    else:
        lines.append("Terrain: flat (the city has no DEM; elevations are not invented)")
    lines.append("")
    lines.append("Layers (draw order, top first):")
    header = f"  {'name':<22} {'role':<11} {'kind':<7} {'count':>8}  checks"
    lines.append(header)
    for layer in city.one_map.tree.layers:
        value = city.one_map.data.get(layer.name)
        if isinstance(value, Grid):
            count = f"{value.shape[1]}x{value.shape[0]}"
            checks = f"{value.cell_size[0]:g} m cells"
        elif value is not None:
            count = f"{len(value):,}"
            report = city.one_map.reports.get(layer.name)
            checks = report.summary() if report is not None else ""
        else:
            count, checks = "-", ""
        lines.append(f"  {layer.name:<22} {layer.role:<11} {layer.kind:<7} {count:>8}  {checks}")
    if city.network is not None:
        net = city.network
        scc = net.largest_strongly_connected()
        lines.append("")
        lines.append(f"Road network: {net.n_nodes:,} nodes, {net.n_edges:,} directed edges, "
                     f"{net.length_m.sum() / 1000:,.2f} km of directed edges, {net.total_lane_km:,.2f} lane-km; "
                     f"largest strongly connected part {scc.n_nodes:,} nodes, {scc.n_edges:,} edges")
    if city.buildings is not None:
        b = city.buildings
        sources = ", ".join(f"{k} {v:,}" for k, v in b.height_source_counts().items() if v)
        lines.append(f"Buildings: {len(b):,} (height from: {sources}); floor area {b.frame['floor_area_m2'].sum() / 1e6:,.3f} km2; "
                     f"residents {b.frame['residents'].sum():,.0f} ({b.residents_method})")
        for note in b.notes:
            lines.append(f"  note: {note}")
    if len(city.pois):
        counts = ", ".join(f"{k} {v}" for k, v in city.pois.counts().items())
        lines.append(f"Points of interest: {counts}")
    if city.rain is not None:
        lines.append(f"Rain series: {len(city.rain)} rows, {city.rain.shape[1] - 1} zone column(s), "
                     f"{city.rain['time_s'].iloc[0]:g} .. {city.rain['time_s'].iloc[-1]:g} s")
    if city.inflows is not None:
        lines.append(f"Inflows: {len(city.inflows)} ({', '.join(map(str, city.inflows.get('name', [])))})")
    if city.land_classes is not None:
        lc = city.land_classes
        lines.append("")
        lines.append("Land classes (Third National Land Survey, inside the boundary):")
        for row in lc.table.itertuples():
            lines.append(f"  {row.code:<4} {row.name_zh:<10} {row.name_en:<42} {_fmt_area(row.area_m2):>16} {row.share * 100:6.2f} %")
        lines.append(f"  sum {_fmt_area(lc.table['area_m2'].sum())} of boundary {_fmt_area(lc.boundary_area_m2)} "
                     f"(closure error {lc.closure_error_m2:.3g} m2)")
    lines.append("")
    lines.append("Attribution:")
    for text in city.attribution or ["(none given in city.toml)"]:
        lines.append(f"  {text}")
    source = f"from cache {city.cache_path}" if city.from_cache else "derived from the sources"
    lines.append("")
    lines.append(f"Loaded in {city.timings_s.get('total', 0):.2f} s ({source})")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    from twin.city.city import load_city

    city = load_city(args.folder, use_cache=not args.no_cache)
    print(format_info(city))
    return 0


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise input_error("--bbox", "", f"expected minlon,minlat,maxlon,maxlat, got {text!r}")
    minlon, minlat, maxlon, maxlat = values
    if not (-180 <= minlon < maxlon <= 180 and -90 <= minlat < maxlat <= 90):
        raise input_error("--bbox", "", f"{text!r} is not a lon/lat box with min < max")
    return values  # type: ignore[return-value]


def cmd_init(args: argparse.Namespace) -> int:
    from twin.city.init import init_city

    if args.osm is None and args.dem is None:
        raise InputError(Problem("twin city init", "--osm/--dem", "give an OSM extract, a DEM or both"))
    bbox = _parse_bbox(args.bbox) if args.bbox else None
    manifest_path = init_city(args.folder, name=args.name or args.folder.name, osm=args.osm, dem=args.dem,
                              bbox_lonlat=bbox, crs=args.crs, force=args.force)
    print(f"wrote {manifest_path}")
    print(f"next: twin city info {args.folder}")
    return 0
