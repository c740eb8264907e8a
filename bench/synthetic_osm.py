"""A synthetic OpenStreetMap extract of a gridded city centre, for size tests.

There is no real large extract offline, so this writes one that looks like a
dense Chinese city centre around Jinan (117.0E, 36.65N, UTM zone 50N): a street
grid (primary / secondary / tertiary / residential ways with names, lanes,
maxspeed, some one-way), building polygons in every built block with types,
levels and heights (shop rows sharing their walls), land-use polygons
(residential, commercial, retail, industrial, parks, ponds and a lake with an
island as a multipolygon), footways in parks and points of interest (hospitals,
schools, police, fire stations, parking with capacity, a stadium).

The layout is drawn in metres of the local UTM zone (around Jinan UTM 50N,
central meridian 117E, which EPSG:4548 shares), so the streets are straight and
at right angles there; coordinates are then rounded to the 1e-7 degree grid
OSM stores.  The returned :class:`SyntheticCity` holds the geometry as written
so a test can compute what a load must find.  Same arguments, same file.

    .venv/bin/python bench/synthetic_osm.py jinan.osm.pbf --blocks 40 40 --per-block 25
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import osmium
from osmium.osm.mutable import Node, Relation, Way
from pyproj import Transformer

__all__ = ["SyntheticCity", "write_synthetic_city"]

Bbox = tuple[float, float, float, float]

COORD_SCALE = 10_000_000  # OSM stores degrees as integers of 1e-7
LANDUSE_SETBACK_M = 8.0   # land-use polygons end this far from street centre lines
BUILDING_SETBACK_M = 11.0  # building plots start this far from street centre lines

# (name, weight): what each block is used for.
BLOCK_USES = (("residential", 0.62), ("commercial", 0.17), ("retail", 0.05), ("industrial", 0.05),
              ("park", 0.08), ("pond", 0.03))
BUILDING_TYPES = {
    "residential": (("apartments", 0.6), ("residential", 0.25), ("house", 0.05), ("yes", 0.1)),
    "commercial": (("commercial", 0.4), ("office", 0.3), ("retail", 0.2), ("yes", 0.1)),
    "retail": (("retail", 0.6), ("commercial", 0.3), ("supermarket", 0.1)),
    "industrial": (("industrial", 0.6), ("warehouse", 0.4)),
}
# (highway, lanes (both directions, "" untagged), maxspeed km/h) by street rank.
STREET_RANKS = (("primary", "6", "60"), ("secondary", "4", "50"), ("tertiary", "2", "40"),
                ("residential", "", "30"))
POI_SHARES = (("school", 0.03), ("hospital", 0.006), ("police", 0.006), ("fire_station", 0.004),
              ("parking", 0.04))


@dataclass
class SyntheticCity:
    """What :func:`write_synthetic_city` wrote, in the coordinates as stored (degrees)."""

    path: Path
    bbox_lonlat: Bbox               # the whole extract
    layout_crs: str                 # the UTM zone the grid is square in
    street_x_m: np.ndarray          # (blocks_x + 1,) layout easting of each north-south street
    street_y_m: np.ndarray          # (blocks_y + 1,) layout northing of each east-west street
    junction_lonlat: np.ndarray     # (blocks_y + 1, blocks_x + 1, 2) street crossings
    junction_node_id: np.ndarray    # (blocks_y + 1, blocks_x + 1) their OSM node ids
    ew_highway: list[str]           # per east-west street (row j)
    ns_highway: list[str]           # per north-south street (column i)
    ew_travel: np.ndarray           # int8 per east-west street: +1 eastbound only, -1 westbound only, 0 both
    ns_travel: np.ndarray           # int8 per north-south street: +1 northbound only, -1 southbound only, 0 both
    block_use: np.ndarray           # (blocks_y, blocks_x) str
    building_way_id: np.ndarray     # (n,)
    building_type: np.ndarray       # (n,) str
    building_offsets: np.ndarray    # (n + 1,) into building_lonlat; rings without the closing point
    building_lonlat: np.ndarray     # (m, 2)
    poi_kind: np.ndarray            # (k,) str: hospital, school, police, fire_station, parking, stadium
    poi_lonlat: list[np.ndarray]    # (k,) vertices of each point of interest (one for a node)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_buildings(self) -> int:
        return int(self.building_way_id.size)

    @property
    def poi_counts(self) -> dict[str, int]:
        kinds, counts = np.unique(self.poi_kind, return_counts=True)
        return {str(k): int(c) for k, c in zip(kinds, counts)}

    def buildings_touching(self, bbox_lonlat: Bbox) -> np.ndarray:
        """Way ids of buildings with a vertex in the box: what a complete-ways crop keeps."""
        hit = np.logical_or.reduceat(_in_box(self.building_lonlat, bbox_lonlat), self.building_offsets[:-1])
        return self.building_way_id[hit]

    def buildings_within(self, bbox_lonlat: Bbox) -> np.ndarray:
        """Way ids of buildings wholly inside the box."""
        hit = np.logical_and.reduceat(_in_box(self.building_lonlat, bbox_lonlat), self.building_offsets[:-1])
        return self.building_way_id[hit]

    def pois_touching(self, bbox_lonlat: Bbox) -> dict[str, int]:
        """Points of interest by kind with a vertex in the box."""
        out: dict[str, int] = {}
        for kind, pts in zip(self.poi_kind, self.poi_lonlat):
            if _in_box(pts, bbox_lonlat).any():
                out[str(kind)] = out.get(str(kind), 0) + 1
        return out

    def junctions_inside(self, bbox_lonlat: Bbox) -> np.ndarray:
        """(rows, cols) mask of the street crossings in the box."""
        return _in_box(self.junction_lonlat, bbox_lonlat)

    def inner_bbox(self, area_share: float = 0.7) -> Bbox:
        """A centred box holding ``area_share`` of the extract, its edges cutting through blocks.

        Edges sit half a storage step off the 1e-7 degree grid, so no vertex lies on them
        and "inside" never depends on rounding.
        """
        minlon, minlat, maxlon, maxlat = self.bbox_lonlat
        margin = (1.0 - math.sqrt(area_share)) / 2.0
        dlon, dlat = maxlon - minlon, maxlat - minlat
        box = (minlon + margin * dlon, minlat + margin * dlat, maxlon - margin * dlon, maxlat - margin * dlat)
        return tuple((round(v * COORD_SCALE) + 0.5) / COORD_SCALE for v in box)  # type: ignore[return-value]


def _in_box(lonlat: np.ndarray, bbox_lonlat: Bbox) -> np.ndarray:
    """Mask over ``lonlat[..., 0:2]`` of the points in the box (edges included, as a crop does)."""
    minlon, minlat, maxlon, maxlat = bbox_lonlat
    lon, lat = lonlat[..., 0], lonlat[..., 1]
    return (lon >= minlon) & (lon <= maxlon) & (lat >= minlat) & (lat <= maxlat)


def _rank(index: int) -> int:
    """Street rank by position: every 8th primary, every 4th secondary, every 2nd tertiary."""
    if index % 8 == 0:
        return 0
    if index % 4 == 0:
        return 1
    if index % 2 == 0:
        return 2
    return 3


def _travel(index: int) -> int:
    """One-way direction of a street line: every other residential street, alternating."""
    if _rank(index) != 3 or index % 4 != 1:
        return 0
    return 1 if (index // 4) % 2 == 0 else -1


def _choose(rng: np.random.Generator, table: tuple[tuple[str, float], ...], size: int) -> np.ndarray:
    names = np.array([name for name, _ in table], dtype=object)
    weights = np.array([w for _, w in table], dtype=float)
    return names[rng.choice(len(names), size=size, p=weights / weights.sum())]


class _Builder:
    """Collects nodes, ways and relations with increasing ids, then writes them sorted."""

    def __init__(self, to_lonlat: Transformer) -> None:
        self.to_lonlat = to_lonlat
        self.node_xy: list[np.ndarray] = []   # chunks of layout metres
        self.node_tags: dict[int, dict[str, str]] = {}
        self.n_nodes = 0
        self.ways: list[tuple[list[int], dict[str, str]]] = []
        self.relations: list[tuple[list[tuple[str, int, str]], dict[str, str]]] = []

    def nodes(self, xy: np.ndarray) -> np.ndarray:
        """Add nodes at layout points (k, 2); returns their ids."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        ids = np.arange(self.n_nodes + 1, self.n_nodes + 1 + len(xy), dtype=np.int64)
        self.node_xy.append(xy)
        self.n_nodes += len(xy)
        return ids

    def poi(self, x: float, y: float, tags: dict[str, str]) -> int:
        node = int(self.nodes(np.array([[x, y]]))[0])
        self.node_tags[node] = tags
        return node

    def way(self, refs: list[int], tags: dict[str, str]) -> int:
        self.ways.append(([int(r) for r in refs], tags))
        return len(self.ways)

    def relation(self, members: list[tuple[str, int, str]], tags: dict[str, str]) -> int:
        self.relations.append((members, tags))
        return len(self.relations)

    def lonlat_fixed(self) -> np.ndarray:
        """All node locations as stored: integers of 1e-7 degree, (n, 2)."""
        xy = np.concatenate(self.node_xy) if self.node_xy else np.zeros((0, 2))
        lon, lat = self.to_lonlat.transform(xy[:, 0], xy[:, 1])
        return np.rint(np.column_stack([lon, lat]) * COORD_SCALE).astype(np.int64)

    def write(self, path: Path, fixed: np.ndarray) -> dict[str, int]:
        lonlat = fixed / COORD_SCALE
        header = osmium.io.Header()
        lo, hi = lonlat.min(axis=0), lonlat.max(axis=0)
        header.add_box(osmium.osm.Box(osmium.osm.Location(lo[0], lo[1]), osmium.osm.Location(hi[0], hi[1])))
        header.set("osmosis_replication_timestamp", "2024-06-01T00:00:00Z")
        header.set("generator", "twin bench/synthetic_osm.py")
        tmp = path.with_name(f".partial.{path.name}")
        with osmium.SimpleWriter(str(tmp), header=header, overwrite=True) as writer:
            for i, (lon, lat) in enumerate(lonlat.tolist(), start=1):
                tags = self.node_tags.get(i)
                writer.add_node(Node(id=i, location=(lon, lat), tags=tags) if tags else Node(id=i, location=(lon, lat)))
            for i, (refs, tags) in enumerate(self.ways, start=1):
                writer.add_way(Way(id=i, nodes=refs, tags=tags))
            for i, (members, tags) in enumerate(self.relations, start=1):
                writer.add_relation(Relation(id=i, members=members, tags=tags))
        tmp.replace(path)
        return {"nodes": len(lonlat), "ways": len(self.ways), "relations": len(self.relations)}


def _street_ways(b: _Builder, rng: np.random.Generator, junction_ids: np.ndarray) -> None:
    """East-west and north-south streets, each split into ways of 1 to 4 blocks as mappers do."""
    rows, cols = junction_ids.shape
    lines = [("ew", j, junction_ids[j, :]) for j in range(rows)] + [("ns", i, junction_ids[:, i]) for i in range(cols)]
    for axis, index, ids in lines:
        highway, lanes, maxspeed = STREET_RANKS[_rank(index)]
        travel = _travel(index)
        name = f"经{index + 1}路" if axis == "ew" else f"纬{index + 1}路"
        name_en = f"Jing {index + 1} Road" if axis == "ew" else f"Wei {index + 1} Road"
        tags = {"highway": highway, "name": name, "name:en": name_en, "maxspeed": maxspeed}
        if travel:
            tags["oneway"] = "yes" if travel > 0 else "-1"
            tags["lanes"] = "1"
        elif lanes:
            tags["lanes"] = lanes
        start = 0
        while start < len(ids) - 1:
            stop = min(start + int(rng.integers(1, 5)), len(ids) - 1)
            b.way(list(ids[start:stop + 1]), dict(tags))
            start = stop


def _rectangle_ring(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _plot_grid(width: float, height: float, count: int) -> tuple[int, int]:
    """Columns and rows of a plot grid with about square plots."""
    cols = max(1, math.ceil(math.sqrt(count * width / height)))
    return cols, math.ceil(count / cols)


def _free_standing(b: _Builder, rng: np.random.Generator, box: Bbox,
                   count: int) -> list[np.ndarray]:
    """One footprint per plot, clear of its neighbours: rectangles (some turned a few
    degrees) and L shapes.  Returns each ring's node ids (not closed)."""
    x0, y0, x1, y1 = box
    cols, rows = _plot_grid(x1 - x0, y1 - y0, count)
    cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
    rings = []
    for k in range(count):
        r, c = divmod(k, cols)
        m = rng.uniform(0.08, 0.2, size=4) * min(cw, ch)
        bx0, by0 = x0 + c * cw + m[0], y0 + r * ch + m[1]
        bx1, by1 = x0 + (c + 1) * cw - m[2], y0 + (r + 1) * ch - m[3]
        shape = rng.random()
        if shape < 0.2:
            nx, ny = bx0 + (bx1 - bx0) * rng.uniform(0.4, 0.7), by0 + (by1 - by0) * rng.uniform(0.4, 0.7)
            ring = np.array([[bx0, by0], [bx1, by0], [bx1, ny], [nx, ny], [nx, by1], [bx0, by1]])
        else:
            ring = _rectangle_ring(bx0, by0, bx1, by1)
            if shape > 0.7:  # turned about its centre, never further than its margin
                half_diagonal = math.hypot(bx1 - bx0, by1 - by0) / 2
                angle = rng.uniform(-1.0, 1.0) * min(0.1, 0.9 * float(m.min()) / half_diagonal)
                centre = ring.mean(axis=0)
                rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
                ring = (ring - centre) @ rot.T + centre
        rings.append(b.nodes(ring))
    return rings


def _terraces(b: _Builder, rng: np.random.Generator, box: Bbox,
              count: int) -> list[np.ndarray]:
    """Rows of footprints sharing their side walls (and the wall nodes), as shop rows are mapped."""
    x0, y0, x1, y1 = box
    cols, rows = _plot_grid(x1 - x0, y1 - y0, count)
    cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
    rings = []
    for r in range(rows):
        n = min(cols, count - r * cols)
        m = rng.uniform(0.1, 0.2, size=2) * ch
        end = rng.uniform(0.05, 0.15) * cw
        xs = x0 + np.arange(n + 1) * cw
        xs[0], xs[-1] = xs[0] + end, xs[-1] - end
        bottom = b.nodes(np.column_stack([xs, np.full(n + 1, y0 + r * ch + m[0])]))
        top = b.nodes(np.column_stack([xs, np.full(n + 1, y0 + (r + 1) * ch - m[1])]))
        rings += [np.array([bottom[c], bottom[c + 1], top[c + 1], top[c]]) for c in range(n)]
    return rings


def _building_tags(rng: np.random.Generator, btype: str, use: str) -> dict[str, str]:
    tags = {"building": btype}
    draw = rng.random()
    tall = btype in ("apartments", "office", "commercial", "residential")
    levels = int(rng.integers(6, 34)) if tall else int(rng.integers(1, 5))
    if draw < 0.15:
        height = levels * 3.0 + rng.uniform(0.0, 2.0)
        tags["height"] = f"{height:.1f}" if rng.random() < 0.7 else f"{height:.0f} m"
    elif draw < 0.6:
        tags["building:levels"] = str(levels)
    if use in ("commercial", "retail") and rng.random() < 0.2:
        brand = ("银座", "恒隆", "泉城", "华联")[int(rng.integers(4))]
        tags["name"] = f"{brand}{int(rng.integers(1, 99))}号楼"
    return tags


def write_synthetic_city(path: str | Path, *, blocks_x: int, blocks_y: int, buildings_per_block: int,
                         lon0: float = 117.0, lat0: float = 36.65, seed: int = 0,
                         block_w_m: float = 120.0, block_h_m: float = 100.0) -> SyntheticCity:
    """Write a gridded city centred on (lon0, lat0) to ``path`` (.osm.pbf or .osm).

    Parks and ponds hold no buildings; every other block holds ``buildings_per_block``.
    """
    if blocks_x < 4 or blocks_y < 4 or buildings_per_block < 0:
        raise ValueError("need at least 4 x 4 blocks and a non-negative number of buildings per block")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    layout_crs = _utm_zone(lon0, lat0)
    to_xy = Transformer.from_crs("EPSG:4326", layout_crs, always_xy=True)
    cx, cy = to_xy.transform(lon0, lat0)
    xs = cx + (np.arange(blocks_x + 1) - blocks_x / 2) * block_w_m
    ys = cy + (np.arange(blocks_y + 1) - blocks_y / 2) * block_h_m
    b = _Builder(Transformer.from_crs(layout_crs, "EPSG:4326", always_xy=True))

    gx, gy = np.meshgrid(xs, ys)
    junction_ids = b.nodes(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    _street_ways(b, rng, junction_ids)

    use = _choose(rng, BLOCK_USES, blocks_x * blocks_y).reshape(blocks_y, blocks_x)
    lake = (blocks_y // 2, blocks_x // 2 - 1)  # next to the centre, inside a centred crop
    use[lake] = "lake"
    stadium = (blocks_y // 2 + 1, blocks_x // 2 + 1)
    use[stadium] = "stadium"

    building_ids: list[int] = []
    building_types: list[str] = []
    building_rings: list[np.ndarray] = []  # node ids
    pois: list[tuple[str, np.ndarray]] = []  # kind, node ids
    for j in range(blocks_y):
        for i in range(blocks_x):
            kind = use[j, i]
            lx0, ly0 = xs[i] + LANDUSE_SETBACK_M, ys[j] + LANDUSE_SETBACK_M
            lx1, ly1 = xs[i + 1] - LANDUSE_SETBACK_M, ys[j + 1] - LANDUSE_SETBACK_M
            outline = _rectangle_ring(lx0, ly0, lx1, ly1)
            if kind == "lake":
                w, h = lx1 - lx0, ly1 - ly0
                island = _rectangle_ring(lx0 + 0.4 * w, ly0 + 0.4 * h, lx0 + 0.6 * w, ly0 + 0.6 * h)
                outer = b.way(_closed(b.nodes(outline)), {})
                inner = b.way(_closed(b.nodes(island)), {})
                b.relation([("w", outer, "outer"), ("w", inner, "inner")],
                           {"type": "multipolygon", "natural": "water", "water": "lake", "name": "大明湖"})
                continue
            if kind in ("park", "stadium"):
                b.way(_closed(b.nodes(outline)), {"leisure": "park", "name": f"公园{j}-{i}"})
                walk = np.array([[lx0 + 2, ly0 + 2], [(lx0 + lx1) / 2, (ly0 + ly1) / 2 + 3], [lx1 - 2, ly1 - 2]])
                b.way(list(b.nodes(walk)), {"highway": "footway"})
                if kind == "stadium":
                    pitch = b.nodes(_rectangle_ring(lx0 + 10, ly0 + 10, lx1 - 10, ly1 - 10))
                    b.way(_closed(pitch), {"leisure": "stadium", "name": "济南奥体中心", "capacity": "60000"})
                    pois.append(("stadium", pitch))
                continue
            if kind == "pond":
                pond = _rectangle_ring(lx0 + 5, ly0 + 5, lx1 - 5, ly1 - 5)
                b.way(_closed(b.nodes(outline)), {"leisure": "park"})
                b.way(_closed(b.nodes(pond)), {"natural": "water", "water": "pond"})
                continue
            b.way(_closed(b.nodes(outline)), {"landuse": str(kind)})
            bx0, by0 = xs[i] + BUILDING_SETBACK_M, ys[j] + BUILDING_SETBACK_M
            bx1, by1 = xs[i + 1] - BUILDING_SETBACK_M, ys[j + 1] - BUILDING_SETBACK_M
            shared_walls = kind == "retail" or (kind == "commercial" and rng.random() < 0.3)
            place = _terraces if shared_walls else _free_standing
            rings = place(b, rng, (bx0, by0, bx1, by1), buildings_per_block)
            types = _choose(rng, BUILDING_TYPES[str(kind)], len(rings))
            for ring, btype in zip(rings, types):
                building_ids.append(b.way(_closed(ring), _building_tags(rng, str(btype), str(kind))))
                building_types.append(str(btype))
                building_rings.append(ring)

    pois += _pois(b, rng, xs, ys, use)
    fixed = b.lonlat_fixed()
    counts = b.write(path, fixed)
    lonlat = fixed / COORD_SCALE

    n_junctions = junction_ids.size
    sizes = np.asarray([len(r) for r in building_rings], dtype=np.int64)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    vertex_node = np.concatenate(building_rings) if building_rings else np.zeros(0, dtype=np.int64)
    minlon, minlat = lonlat.min(axis=0)
    maxlon, maxlat = lonlat.max(axis=0)
    counts.update({"buildings": len(building_ids), "junctions": n_junctions, "blocks": blocks_x * blocks_y})
    return SyntheticCity(
        path=path,
        bbox_lonlat=(float(minlon), float(minlat), float(maxlon), float(maxlat)),
        layout_crs=layout_crs,
        street_x_m=xs, street_y_m=ys,
        junction_lonlat=lonlat[junction_ids - 1],
        junction_node_id=junction_ids,
        ew_highway=[STREET_RANKS[_rank(j)][0] for j in range(blocks_y + 1)],
        ns_highway=[STREET_RANKS[_rank(i)][0] for i in range(blocks_x + 1)],
        ew_travel=np.array([_travel(j) for j in range(blocks_y + 1)], dtype=np.int8),
        ns_travel=np.array([_travel(i) for i in range(blocks_x + 1)], dtype=np.int8),
        block_use=use.astype(str),
        building_way_id=np.asarray(building_ids, dtype=np.int64),
        building_type=np.asarray(building_types, dtype=str),
        building_offsets=offsets,
        building_lonlat=lonlat[vertex_node - 1],
        poi_kind=np.array([kind for kind, _ in pois], dtype=str),
        poi_lonlat=[lonlat[ids - 1] for _, ids in pois],
        counts=counts,
    )


def _utm_zone(lon: float, lat: float) -> str:
    """The WGS 84 UTM zone holding a point (Jinan: EPSG:32650)."""
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _closed(ids: np.ndarray) -> list[int]:
    refs = [int(i) for i in ids]
    return refs + refs[:1]


def _pois(b: _Builder, rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray,
          use: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Amenity nodes in built blocks, on the street-side strip between land use and buildings;
    at least one of each kind."""
    built = np.argwhere(np.isin(use, list(BUILDING_TYPES)))
    pois = []
    for n, (kind, share) in enumerate(POI_SHARES):
        wanted = max(1, int(round(share * len(built))))
        chosen = built[rng.choice(len(built), size=wanted, replace=False)]
        for j, i in chosen:
            x = xs[i] + (LANDUSE_SETBACK_M + BUILDING_SETBACK_M) / 2
            y = ys[j] + 20.0 + 8.0 * n
            tags = {"amenity": kind, "name": f"{kind}-{j}-{i}"}
            if kind == "parking":
                tags.update({"parking": "surface", "capacity": str(int(rng.integers(20, 400)))})
            pois.append((kind, np.array([b.poi(x, y, tags)])))
    return pois


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="output .osm.pbf (or .osm)")
    parser.add_argument("--blocks", type=int, nargs=2, default=(40, 40), metavar=("X", "Y"))
    parser.add_argument("--per-block", type=int, default=25, help="buildings per built block")
    parser.add_argument("--lon0", type=float, default=117.0)
    parser.add_argument("--lat0", type=float, default=36.65)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    city = write_synthetic_city(args.path, blocks_x=args.blocks[0], blocks_y=args.blocks[1],
                                buildings_per_block=args.per_block, lon0=args.lon0, lat0=args.lat0, seed=args.seed)
    print(f"{city.path}: {city.counts}, POIs {city.poi_counts}, bbox {city.bbox_lonlat}")


if __name__ == "__main__":
    main()
