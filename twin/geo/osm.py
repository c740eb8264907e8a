"""Read OpenStreetMap extracts (``.osm.pbf`` and ``.osm`` XML) without a server.

Layers are selected with osmnx-style tag filters and read in one pass over the
file; geometries follow osmnx's rules (nodes are points, closed ways that are
areas are polygons, multipolygon and boundary relations are multipolygons,
everything else is a line).  Coordinates are WGS84 longitude/latitude in degrees.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import shapely

from twin.errors import TwinError, input_error

__all__ = [
    "HIGHWAY_TAG_KEYS",
    "OsmWays",
    "crop_osm",
    "osm_header",
    "read_osm_highways",
    "read_osm_layers",
]

Bbox = tuple[float, float, float, float]
TagSpec = Mapping[str, bool | str | list[str]]

_EXPECTED = "an OpenStreetMap extract (.osm.pbf, .osm, .osm.bz2 or .osm.gz)"

# Closed ways become polygons when one of their tags passes this table
# (osmnx's copy of https://wiki.openstreetmap.org/wiki/Overpass_turbo/Polygon_Features).
# None: every value; ("pass", values): only these; ("block", values): all but these.
_POLYGON_RULES: dict[str, tuple[str, frozenset[str]] | None] = {
    "aeroway": ("block", frozenset({"taxiway"})),
    "amenity": None,
    "area": None,
    "area:highway": None,
    "barrier": ("pass", frozenset({"city_wall", "ditch", "hedge", "retaining_wall", "spikes"})),
    "boundary": None,
    "building": None,
    "building:part": None,
    "craft": None,
    "golf": None,
    "highway": ("pass", frozenset({"elevator", "escape", "rest_area", "services"})),
    "historic": None,
    "indoor": None,
    "landuse": None,
    "leisure": None,
    "man_made": ("block", frozenset({"cutline", "embankment", "pipeline"})),
    "military": None,
    "natural": ("block", frozenset({"arete", "cliff", "coastline", "ridge", "tree_row"})),
    "office": None,
    "place": None,
    "power": ("pass", frozenset({"generator", "plant", "substation", "transformer"})),
    "public_transport": None,
    "railway": ("pass", frozenset({"platform", "roundhouse", "station", "turntable"})),
    "ruins": None,
    "shop": None,
    "tourism": None,
    "waterway": ("pass", frozenset({"boatyard", "dam", "dock", "riverbank"})),
}

# Relation types that describe areas (the ones osmnx and libosmium assemble).
_AREA_RELATION_TYPES = frozenset({"multipolygon", "boundary"})

# Highway tags the road network needs; everything else is dropped on reading.
HIGHWAY_TAG_KEYS: tuple[str, ...] = (
    "highway", "name", "oneway", "junction", "lanes", "lanes:forward", "lanes:backward",
    "maxspeed", "bridge", "tunnel", "access", "motor_vehicle", "motorcar", "service",
    "area", "ref",
)

_RESERVED_COLUMNS = frozenset({"osm_type", "osm_id", "geometry"})


# --------------------------------------------------------------------------- errors


@contextmanager
def _osm_errors(path: Path, action: str = "read") -> Iterator[None]:
    """Turn osmium's low-level failures into an InputError naming the file."""
    try:
        yield
    except TwinError:
        raise
    except (RuntimeError, OSError) as exc:
        raise input_error(
            path, "",
            f"could not {action} it as OpenStreetMap data ({exc}); expected {_EXPECTED}",
        ) from None


def _check_source(path: str | os.PathLike[str]) -> Path:
    """Fail early, with a clear message, on a missing or unreadable OSM file."""
    p = Path(path)
    if not p.exists():
        raise input_error(p, "", f"file not found; expected {_EXPECTED}")
    if not p.is_file():
        raise input_error(p, "", f"is not a file; expected {_EXPECTED}")
    with _osm_errors(p):
        osmium.io.Reader(str(p), osmium.osm.NOTHING).header()
    return p


def _check_bbox(bbox_lonlat: Bbox | None, source: str = "bbox") -> Bbox | None:
    """Validate a (minlon, minlat, maxlon, maxlat) box in degrees."""
    if bbox_lonlat is None:
        return None
    try:
        minlon, minlat, maxlon, maxlat = (float(v) for v in bbox_lonlat)
    except (TypeError, ValueError):
        raise input_error(
            source, "bbox", f"{bbox_lonlat!r} is not four numbers (minlon, minlat, maxlon, maxlat)"
        ) from None
    ok = (
        all(math.isfinite(v) for v in (minlon, minlat, maxlon, maxlat))
        and -180.0 <= minlon < maxlon <= 180.0
        and -90.0 <= minlat < maxlat <= 90.0
    )
    if not ok:
        raise input_error(
            source, "bbox",
            f"{bbox_lonlat!r} is not a box in degrees: give (minlon, minlat, maxlon, maxlat) "
            "with min < max, longitudes in [-180, 180] and latitudes in [-90, 90]",
        )
    return minlon, minlat, maxlon, maxlat


# --------------------------------------------------------------------------- header


def osm_header(path: str | os.PathLike[str]) -> dict:
    """The file's bounding box (degrees, or None), data timestamp and generator."""
    p = _check_source(path)
    with _osm_errors(p):
        header = osmium.io.Reader(str(p), osmium.osm.NOTHING).header()
        box = header.box()
        bbox = None
        if box.valid():
            bl, tr = box.bottom_left, box.top_right
            bbox = (bl.lon, bl.lat, tr.lon, tr.lat)
        timestamp = header.get("osmosis_replication_timestamp", "") or header.get("timestamp", "")
        generator = header.get("generator", "")
    return {"bbox_lonlat": bbox, "timestamp": timestamp or None, "generator": generator or None}


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class _LayerFilter:
    """One layer's tag filter: key -> None (any value) or the accepted values."""

    name: str
    rules: tuple[tuple[str, frozenset[str] | None], ...]

    def matches(self, tags: dict[str, str]) -> bool:
        for key, values in self.rules:
            value = tags.get(key)
            if value is not None and (values is None or value in values):
                return True
        return False


def _parse_specs(path: Path, specs: Mapping[str, TagSpec]) -> list[_LayerFilter]:
    """Check the osmnx-style tag dicts and compile them to filters."""
    if not specs:
        raise input_error(path, "osm_tags", "no layers asked for: give at least one tag filter")
    filters = []
    for name, spec in specs.items():
        where = f"{name}.osm_tags"
        if not isinstance(spec, Mapping) or not spec:
            raise input_error(
                path, where,
                'expected a table of tags such as { building = true } or { amenity = ["school"] }',
            )
        rules = []
        for key, value in spec.items():
            if not isinstance(key, str) or not key:
                raise input_error(path, where, f"tag key {key!r} must be a non-empty string")
            if value is True:
                rules.append((key, None))
            elif isinstance(value, str):
                rules.append((key, frozenset({value})))
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
                rules.append((key, frozenset(value)))
            else:
                raise input_error(
                    path, f"{where}.{key}",
                    f"{value!r} is not a tag filter: use true (any value), a string or a list of strings",
                )
        filters.append(_LayerFilter(str(name), tuple(rules)))
    return filters


def _is_area_way(tags: dict[str, str]) -> bool:
    """osmnx's rule for whether a closed way is a polygon."""
    if tags.get("area") == "no":
        return False
    for key, value in tags.items():
        if key not in _POLYGON_RULES:
            continue
        rule = _POLYGON_RULES[key]
        if rule is None:
            return True
        kind, values = rule
        if (kind == "pass") == (value in values):
            return True
    return False


@dataclass
class _Collected:
    """Features found in the pass, before geometries are decoded."""

    kinds: list[str] = field(default_factory=list)        # "point", "line", "ring", "multi"
    wkb: list[str] = field(default_factory=list)
    osm_type: list[str] = field(default_factory=list)
    osm_id: list[int] = field(default_factory=list)
    tags: list[dict[str, str]] = field(default_factory=list)
    layers: list[list[int]] = field(default_factory=list)
    unbuildable: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    ignored_relations: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, wkb: str, osm_type: str, osm_id: int,
            tags: dict[str, str], layers: list[int]) -> None:
        self.kinds.append(kind)
        self.wkb.append(wkb)
        self.osm_type.append(osm_type)
        self.osm_id.append(osm_id)
        self.tags.append(tags)
        self.layers.append(layers)


def _collect(path: Path, filters: list[_LayerFilter]) -> _Collected:
    """The single pass over the file: match tags, build WKB, note failures."""
    keys = sorted({key for f in filters for key, _ in f.rules})
    factory = osmium.geom.WKBFactory()
    out = _Collected(unbuildable={f.name: [] for f in filters},
                     ignored_relations={f.name: 0 for f in filters})
    relation_candidates: dict[int, list[int]] = {}
    relations_built: set[int] = set()

    # Rules by tag key: each object looks up its own few keys instead of
    # running every layer's filter.
    rules_by_key: dict[str, list[tuple[int, frozenset[str] | None]]] = {}
    for i, f in enumerate(filters):
        for key, values in f.rules:
            rules_by_key.setdefault(key, []).append((i, values))

    def matching(tags: dict[str, str]) -> list[int]:
        hit: set[int] = set()
        for key, value in tags.items():
            for i, values in rules_by_key.get(key, ()):
                if values is None or value in values:
                    hit.add(i)
        return sorted(hit)

    processor = (
        osmium.FileProcessor(str(path))
        .with_locations()
        .with_areas(osmium.filter.KeyFilter(*keys))
        .with_filter(osmium.filter.KeyFilter(*keys))
    )
    for obj in processor:
        if obj.is_area():
            if obj.from_way():
                continue  # closed ways are built from their own nodes below
            tags = {t.k: t.v for t in obj.tags}
            layers = matching(tags)
            if not layers:
                continue
            rel_id = obj.orig_id()
            try:
                wkb = factory.create_multipolygon(obj)
            except (RuntimeError, osmium.InvalidLocationError):
                continue  # counted as unbuildable with the relation below
            relations_built.add(rel_id)
            out.add("multi", wkb, "relation", rel_id, tags, layers)
            continue
        tags = {t.k: t.v for t in obj.tags}
        layers = matching(tags)
        if not layers:
            continue
        if obj.is_node():
            if not obj.location.valid():
                for i in layers:
                    out.unbuildable[filters[i].name].append(("node", obj.id))
                continue
            out.add("point", factory.create_point(obj), "node", obj.id, tags, layers)
        elif obj.is_way():
            try:
                wkb = factory.create_linestring(obj)
            except (RuntimeError, osmium.InvalidLocationError):
                for i in layers:
                    out.unbuildable[filters[i].name].append(("way", obj.id))
                continue
            nodes = obj.nodes
            closed = len(nodes) > 2 and nodes[0].ref == nodes[len(nodes) - 1].ref
            kind = "ring" if closed and _is_area_way(tags) else "line"
            out.add(kind, wkb, "way", obj.id, tags, layers)
        elif obj.is_relation():
            if tags.get("type") in _AREA_RELATION_TYPES:
                relation_candidates[obj.id] = layers
            else:
                for i in layers:
                    out.ignored_relations[filters[i].name] += 1
    for rel_id, layers in relation_candidates.items():
        if rel_id not in relations_built:
            for i in layers:
                out.unbuildable[filters[i].name].append(("relation", rel_id))
    return out


def _decode_geometries(found: _Collected) -> tuple[np.ndarray, np.ndarray]:
    """Decode all WKB at once; closed area ways become polygons.

    Returns the geometries and a mask of those that could be built (a ring
    with fewer than four points after dropping repeated locations cannot).
    """
    geoms = shapely.from_wkb(np.asarray(found.wkb, dtype=object))
    ok = np.ones(len(geoms), dtype=bool)
    kinds = np.asarray(found.kinds, dtype=object)
    ring_idx = np.flatnonzero(kinds == "ring")
    if ring_idx.size:
        n_coords = shapely.get_num_coordinates(geoms[ring_idx])
        closed = shapely.is_closed(geoms[ring_idx])
        good = (n_coords >= 4) & closed
        ok[ring_idx[~good]] = False
        idx = ring_idx[good]
        if idx.size:
            coords, owner = shapely.get_coordinates(geoms[idx], return_index=True)
            rings = shapely.linearrings(coords, indices=owner)
            geoms[idx] = shapely.polygons(rings)
    return geoms, ok


def _intersecting(geoms: np.ndarray, bbox: Bbox) -> np.ndarray:
    """Mask of geometries touching the box (invalid ones judged by their envelope)."""
    box = shapely.box(*bbox)
    try:
        return shapely.intersects(geoms, box)
    except shapely.errors.GEOSException:
        return shapely.intersects(shapely.envelope(geoms), box)


def _tag_columns(rows: list[dict[str, str]], spec_keys: list[str]) -> dict[str, np.ndarray]:
    """One object column per tag key (None where absent), built in one sweep."""
    positions: dict[str, list[int]] = {}
    values: dict[str, list[str]] = {}
    for i, tags in enumerate(rows):
        for key, value in tags.items():
            if key not in positions:
                positions[key] = []
                values[key] = []
            positions[key].append(i)
            values[key].append(value)
    order = ["name"] + [k for k in spec_keys if k != "name"]
    order += sorted(k for k in positions if k not in order)
    columns: dict[str, np.ndarray] = {}
    for key in order:
        col = np.full(len(rows), None, dtype=object)
        if key in positions:
            col[np.asarray(positions[key], dtype=np.int64)] = np.asarray(values[key], dtype=object)
        columns[f"tag:{key}" if key in _RESERVED_COLUMNS else key] = col
    return columns


def _empty_layer() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"osm_type": pd.Series([], dtype=object), "osm_id": pd.Series([], dtype=np.int64),
         "name": pd.Series([], dtype=object)},
        geometry=gpd.GeoSeries([], crs="EPSG:4326"),
        crs="EPSG:4326",
    )


def read_osm_layers(
    path: str | os.PathLike[str],
    specs: Mapping[str, TagSpec],
    *,
    bbox_lonlat: Bbox | None = None,
) -> dict[str, gpd.GeoDataFrame]:
    """Several tag-filtered layers from one OSM file in a single pass.

    ``specs`` maps a layer name to an osmnx-style tag dict (a feature matches
    when any key matches: ``True`` any value, a string that value, a list any
    of them).  Each layer is a GeoDataFrame in EPSG:4326 with ``osm_type``,
    ``osm_id``, ``name``, one column per tag key of its features, and
    ``geometry``.  Invalid geometries are kept as they are; features whose
    geometry cannot be built at all (missing nodes or members, as at the edge
    of an extract) are listed in ``attrs["unbuildable"]`` (their count) and
    ``attrs["unbuildable_ids"]`` ((osm_type, osm_id) pairs).  Matching
    relations that are not areas (routes, sites) are skipped as osmnx does and
    counted in ``attrs["ignored_relations"]``.
    """
    p = _check_source(path)
    filters = _parse_specs(p, specs)
    bbox = _check_bbox(bbox_lonlat, str(p))
    with _osm_errors(p):
        found = _collect(p, filters)
    geoms, ok = _decode_geometries(found)
    bad_rings = np.flatnonzero(~ok)
    keep = ok.copy()
    if bbox is not None and len(geoms):
        keep[ok] &= _intersecting(geoms[ok], bbox)

    members: list[list[int]] = [[] for _ in filters]
    for row, layer_ids in enumerate(found.layers):
        for i in layer_ids:
            members[i].append(row)
    osm_type = np.asarray(found.osm_type, dtype=object)
    osm_id = np.asarray(found.osm_id, dtype=np.int64)

    result: dict[str, gpd.GeoDataFrame] = {}
    for i, filt in enumerate(filters):
        rows = np.asarray(members[i], dtype=np.int64)
        unbuildable = list(found.unbuildable[filt.name])
        unbuildable += [(str(osm_type[r]), int(osm_id[r])) for r in np.intersect1d(rows, bad_rings)]
        rows = rows[keep[rows]] if rows.size else rows
        if rows.size == 0:
            gdf = _empty_layer()
        else:
            data = {"osm_type": pd.Series(osm_type[rows], dtype=object),
                    "osm_id": pd.Series(osm_id[rows], dtype=np.int64)}
            tag_cols = _tag_columns([found.tags[r] for r in rows], [k for k, _ in filt.rules])
            data.update({k: pd.Series(v, dtype=object) for k, v in tag_cols.items()})
            gdf = gpd.GeoDataFrame(data, geometry=geoms[rows], crs="EPSG:4326")
        gdf.attrs["unbuildable"] = len(unbuildable)
        gdf.attrs["unbuildable_ids"] = unbuildable
        gdf.attrs["ignored_relations"] = found.ignored_relations[filt.name]
        gdf.attrs["source"] = str(p)
        result[filt.name] = gdf
    return result


# --------------------------------------------------------------------------- highways


@dataclass
class OsmWays:
    """Raw highway ways as flat arrays, the input of the road network.

    Way ``i`` has the node references ``node_ids[node_offsets[i]:node_offsets[i+1]]``
    with their longitudes/latitudes (degrees) in ``node_lon``/``node_lat``.
    """

    way_id: np.ndarray          # int64, one per way
    tags: list[dict[str, str]]  # one per way, only HIGHWAY_TAG_KEYS
    node_offsets: np.ndarray    # int64, n_ways + 1
    node_ids: np.ndarray        # int64, one per node reference
    node_lon: np.ndarray        # float64 degrees, one per node reference
    node_lat: np.ndarray        # float64 degrees, one per node reference
    skipped_way_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source: str = ""

    @property
    def n_ways(self) -> int:
        return int(self.way_id.size)

    @property
    def n_skipped(self) -> int:
        """Highway ways left out because a node location was missing or they had < 2 nodes."""
        return int(self.skipped_way_ids.size)

    def subset(self, mask: np.ndarray) -> OsmWays:
        """The ways where ``mask`` (one bool per way) is true."""
        mask = np.asarray(mask, dtype=bool)
        counts = np.diff(self.node_offsets)
        per_node = np.repeat(mask, counts)
        offsets = np.zeros(int(mask.sum()) + 1, dtype=np.int64)
        np.cumsum(counts[mask], out=offsets[1:])
        return OsmWays(
            way_id=self.way_id[mask],
            tags=[t for t, m in zip(self.tags, mask) if m],
            node_offsets=offsets,
            node_ids=self.node_ids[per_node],
            node_lon=self.node_lon[per_node],
            node_lat=self.node_lat[per_node],
            skipped_way_ids=self.skipped_way_ids,
            source=self.source,
        )


def read_osm_highways(
    path: str | os.PathLike[str], *, bbox_lonlat: Bbox | None = None
) -> OsmWays:
    """Every way tagged ``highway`` with its node references and locations.

    With ``bbox_lonlat`` only ways with at least one node inside the box are
    kept, each with all its nodes.
    """
    p = _check_source(path)
    bbox = _check_bbox(bbox_lonlat, str(p))
    way_ids: list[int] = []
    tags: list[dict[str, str]] = []
    counts: list[int] = []
    ids: list[int] = []
    lons: list[float] = []
    lats: list[float] = []
    skipped: list[int] = []
    wanted = frozenset(HIGHWAY_TAG_KEYS)
    processor = (
        osmium.FileProcessor(str(p), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    with _osm_errors(p):
        for way in processor:
            if not way.is_way():
                continue
            try:
                refs = [(n.ref, n.lon, n.lat) for n in way.nodes]
            except osmium.InvalidLocationError:
                skipped.append(way.id)
                continue
            if len(refs) < 2:
                skipped.append(way.id)
                continue
            way_ids.append(way.id)
            tags.append({t.k: t.v for t in way.tags if t.k in wanted})
            counts.append(len(refs))
            for ref, lon, lat in refs:
                ids.append(ref)
                lons.append(lon)
                lats.append(lat)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.asarray(counts, dtype=np.int64), out=offsets[1:])
    ways = OsmWays(
        way_id=np.asarray(way_ids, dtype=np.int64),
        tags=tags,
        node_offsets=offsets,
        node_ids=np.asarray(ids, dtype=np.int64),
        node_lon=np.asarray(lons, dtype=np.float64),
        node_lat=np.asarray(lats, dtype=np.float64),
        skipped_way_ids=np.asarray(skipped, dtype=np.int64),
        source=str(p),
    )
    if bbox is None or ways.n_ways == 0:
        return ways
    minlon, minlat, maxlon, maxlat = bbox
    inside = (
        (ways.node_lon >= minlon) & (ways.node_lon <= maxlon)
        & (ways.node_lat >= minlat) & (ways.node_lat <= maxlat)
    )
    any_inside = np.logical_or.reduceat(inside, ways.node_offsets[:-1])
    return ways.subset(any_inside)


# --------------------------------------------------------------------------- crop


def crop_osm(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    bbox_lonlat: Bbox,
    *,
    overwrite: bool = False,
) -> dict[str, int]:
    """Cut a box out of an OSM extract, keeping ways complete.

    Keeps the nodes inside the box, every way with at least one node inside
    together with all its nodes, and every relation with a kept member (and
    the relations containing those); relation members outside stay missing,
    as with ``osmium extract --strategy complete_ways``.  The source must be
    sorted (nodes, then ways, then relations, as every published extract is).
    The output is written to a temporary file next to ``dst`` and moved into
    place when complete.  Returns the counts of kept objects.
    """
    src_p = _check_source(src)
    dst_p = Path(dst)
    bbox = _check_bbox(bbox_lonlat, str(dst_p))
    if bbox is None:
        raise input_error(dst_p, "bbox", "a crop needs a box (minlon, minlat, maxlon, maxlat)")
    if dst_p.resolve() == src_p.resolve():
        raise input_error(dst_p, "", "is the file being cropped: write the crop to another file")
    if dst_p.exists() and not overwrite:
        raise input_error(dst_p, "", "already exists: choose another name or allow overwriting")
    if not dst_p.parent.is_dir():
        raise input_error(dst_p, "", "its folder does not exist: create it first")

    with _osm_errors(src_p):
        node_ids, way_ids, relation_ids, inside = _crop_selection(src_p, bbox)
        header = _crop_header(src_p, bbox)

    # The copy runs in osmium's C++ (id filters, then the writer), so it costs
    # what is read, not a Python call per object of the source extract.  Kept
    # ways and relations are all in the source; of the nodes, those outside the
    # box that kept ways refer to may be missing from it and are counted.
    present_outside = _NodeCount()
    tmp = dst_p.with_name(f".{os.getpid()}.partial.{dst_p.name}")
    try:
        with _osm_errors(dst_p, "write"):
            with osmium.SimpleWriter(str(tmp), header=header, overwrite=True) as writer:
                osmium.apply(
                    str(src_p),
                    osmium.filter.IdFilter(node_ids).enable_for(osmium.osm.NODE),
                    osmium.filter.IdFilter(way_ids).enable_for(osmium.osm.WAY),
                    osmium.filter.IdFilter(relation_ids).enable_for(osmium.osm.RELATION),
                    writer,
                    osmium.filter.EntityFilter(osmium.osm.NODE),
                    osmium.filter.IdFilter(node_ids - inside),
                    present_outside,
                )
        os.replace(tmp, dst_p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"nodes": len(inside) + present_outside.count, "ways": len(way_ids),
            "relations": len(relation_ids), "nodes_inside": len(inside)}


class _NodeCount:
    """Handler counting the nodes that reach it."""

    def __init__(self) -> None:
        self.count = 0

    def node(self, _node: object) -> None:
        self.count += 1


def _crop_selection(src: Path, bbox: Bbox) -> tuple[set[int], set[int], set[int], set[int]]:
    """Ids of the nodes, ways and relations a crop keeps, and of the nodes in the box
    (one pass, sorted file).

    Plain Python sets keep memory proportional to what is kept; osmium's
    IdTracker allocates bitmaps over the whole id range (over 1 GB even for a
    small extract with recent ids).
    """
    minlon, minlat, maxlon, maxlat = bbox
    inside: set[int] = set()
    nodes: set[int] = set()
    ways: set[int] = set()
    rel_members: dict[int, list[tuple[str, int]]] = {}
    for obj in osmium.FileProcessor(str(src)):
        if obj.is_node():
            loc = obj.location
            if loc.valid() and minlon <= loc.lon <= maxlon and minlat <= loc.lat <= maxlat:
                inside.add(obj.id)
        elif obj.is_way():
            refs = [n.ref for n in obj.nodes]
            if not inside.isdisjoint(refs):
                ways.add(obj.id)
                nodes.update(refs)
        elif obj.is_relation():
            rel_members[obj.id] = [(m.type, m.ref) for m in obj.members]
    nodes |= inside
    relations: set[int] = set()
    parents: dict[int, list[int]] = {}
    for rel_id, members in rel_members.items():
        for kind, ref in members:
            if (kind == "n" and ref in nodes) or (kind == "w" and ref in ways):
                relations.add(rel_id)
            elif kind == "r":
                parents.setdefault(ref, []).append(rel_id)
    todo = list(relations)
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in relations:
                relations.add(parent)
                todo.append(parent)
    return nodes, ways, relations, inside


def _crop_header(src: Path, bbox: Bbox) -> osmium.io.Header:
    """Header of a crop: the box, the source's data timestamp, our generator."""
    minlon, minlat, maxlon, maxlat = bbox
    header = osmium.io.Header()
    header.add_box(osmium.osm.Box(osmium.osm.Location(minlon, minlat),
                                  osmium.osm.Location(maxlon, maxlat)))
    src_header = osmium.io.Reader(str(src), osmium.osm.NOTHING).header()
    stamp = src_header.get("osmosis_replication_timestamp", "") or src_header.get("timestamp", "")
    if stamp:
        header.set("osmosis_replication_timestamp", stamp)
        header.set("timestamp", stamp)
    header.set("generator", "twin crop_osm")
    return header
