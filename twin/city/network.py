"""The drivable road network as flat NumPy arrays (nodes, directed edges, CSR).

Built from raw OSM highway ways (:func:`twin.geo.osm.read_osm_highways`): ways
are filtered like osmnx's ``"drive"`` network, split into edges at
intersections and ends, projected to the city's metric CRS, and given lanes,
free speeds and capacities per direction.  A two-way road becomes two directed
edges.  Routing runs on scipy's sparse-graph Dijkstra.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from twin.errors import input_error
from twin.geo.osm import OsmWays
from twin.geo.raster import Grid

__all__ = [
    "ROAD_CLASSES",
    "RoadClass",
    "RoadNetwork",
    "ShortestPath",
    "build_road_network",
    "is_drivable",
    "parse_maxspeed_kph",
]


# --------------------------------------------------------------------------- class table


@dataclass(frozen=True)
class RoadClass:
    """Defaults for one OSM ``highway`` class.

    ``speed_kph`` is used where ``maxspeed`` is missing or not a number (typical
    urban limits: osmnx has no fixed table, it imputes per-class means);
    ``lanes`` is per direction where ``lanes`` is missing; capacity is per lane
    in vehicles per hour (HCM-like saturation values).
    """

    name: str
    speed_kph: float
    lanes: int
    capacity_per_lane_vph: float


# The order gives the int8 codes stored in RoadNetwork.road_class.
ROAD_CLASSES: tuple[RoadClass, ...] = (
    RoadClass("motorway", 110.0, 2, 2000.0),
    RoadClass("motorway_link", 60.0, 1, 1500.0),
    RoadClass("trunk", 90.0, 2, 1800.0),
    RoadClass("trunk_link", 50.0, 1, 1500.0),
    RoadClass("primary", 50.0, 1, 1700.0),
    RoadClass("primary_link", 40.0, 1, 1500.0),
    RoadClass("secondary", 50.0, 1, 1500.0),
    RoadClass("secondary_link", 40.0, 1, 1200.0),
    RoadClass("tertiary", 50.0, 1, 1200.0),
    RoadClass("tertiary_link", 30.0, 1, 1000.0),
    RoadClass("unclassified", 40.0, 1, 800.0),
    RoadClass("residential", 30.0, 1, 800.0),
    RoadClass("road", 30.0, 1, 800.0),
    RoadClass("living_street", 10.0, 1, 400.0),
    RoadClass("service", 20.0, 1, 400.0),
)
_CLASS_CODE = {c.name: i for i, c in enumerate(ROAD_CLASSES)}
_CLASS_NAMES = tuple(c.name for c in ROAD_CLASSES)

# osmnx's "drive" / "drive_service" filters (osmnx._overpass._get_osm_filter),
# matched the way Overpass regexes match: a tag is excluded when its value
# contains one of the words.  Unlike osmnx, only the classes in ROAD_CLASSES
# count as roads (osmnx also keeps unknown values such as "busway").
_EXCLUDED_SERVICE = {
    "drive": ("alley", "driveway", "emergency_access", "parking", "parking_aisle", "private"),
    "drive_service": ("emergency_access", "parking", "parking_aisle", "private"),
}
_EXCLUDED_ACCESS = ("private",)  # osmnx settings.default_access; access=no stays (transit bridges)
_ONEWAY_FORWARD = frozenset({"yes", "true", "1"})
_ONEWAY_BACKWARD = frozenset({"-1", "reverse"})
_ONEWAY_JUNCTIONS = frozenset({"roundabout", "circular"})
_MAX_LANES = 12


def _contains_any(value: str | None, words: tuple[str, ...]) -> bool:
    return value is not None and any(w in value for w in words)


def is_drivable(tags: dict[str, str], network_type: str = "drive") -> bool:
    """Whether a highway way belongs to the car network (osmnx's rule)."""
    highway = tags.get("highway")
    if highway not in _CLASS_CODE:
        return False
    if highway == "service" and network_type == "drive":
        return False
    return not (
        _contains_any(tags.get("area"), ("yes",))
        or _contains_any(tags.get("access"), _EXCLUDED_ACCESS)
        or _contains_any(tags.get("motor_vehicle"), ("no",))
        or _contains_any(tags.get("motorcar"), ("no",))
        or _contains_any(tags.get("service"), _EXCLUDED_SERVICE[network_type])
    )


# --------------------------------------------------------------------------- tag parsing

_KPH_PER_MPH = 1.609344
_KPH_PER_KNOT = 1.852
_NUMBER = re.compile(r"^(\d+(?:[.,]\d+)?)\s*(km/h|kmh|kph|mph|knots)?$")
_ZONE_NUMBER = re.compile(r"zone:?(\d+)$")

# Implicit limits (https://wiki.openstreetmap.org/wiki/Key:maxspeed), km/h:
# country-specific values first, then the usual value of the zone type.
_IMPLICIT_KPH: dict[str, float] = {
    "DE:motorway": 130.0, "DE:rural": 100.0, "DE:urban": 50.0,
    "AT:rural": 100.0, "AT:motorway": 130.0,
    "FR:rural": 80.0, "FR:motorway": 130.0,
    "IT:motorway": 130.0,
    "FI:rural": 80.0,
    "SE:rural": 70.0,
    "NO:rural": 80.0,
    "CH:rural": 80.0,
    "RU:urban": 60.0, "RU:motorway": 110.0,
    "CN:motorway": 120.0, "CN:urban": 50.0, "CN:rural": 70.0,
    "GB:nsl_single": 60 * _KPH_PER_MPH, "GB:nsl_dual": 70 * _KPH_PER_MPH,
    "GB:motorway": 70 * _KPH_PER_MPH, "GB:nsl_restricted": 30 * _KPH_PER_MPH,
    "UK:nsl_single": 60 * _KPH_PER_MPH, "UK:nsl_dual": 70 * _KPH_PER_MPH,
    "UK:motorway": 70 * _KPH_PER_MPH, "UK:nsl_restricted": 30 * _KPH_PER_MPH,
}
_IMPLICIT_ZONE_KPH: dict[str, float] = {
    "urban": 50.0, "rural": 90.0, "motorway": 120.0, "trunk": 100.0,
    "living_street": 20.0, "pedestrian_zone": 20.0, "bicycle_road": 30.0,
    "cyclestreet": 30.0, "school": 30.0, "walk": 7.0,
}
_WORD_KPH: dict[str, float] = {"walk": 7.0}  # "none", "signals", "variable": class default


def _parse_one_speed(text: str) -> float:
    text = text.strip()
    if not text:
        return math.nan
    m = _NUMBER.match(text.lower())
    if m:
        value = float(m.group(1).replace(",", "."))
        unit = m.group(2)
        if unit == "mph":
            value *= _KPH_PER_MPH
        elif unit == "knots":
            value *= _KPH_PER_KNOT
        return value if value > 0 else math.nan
    if text.lower() in _WORD_KPH:
        return _WORD_KPH[text.lower()]
    if text in _IMPLICIT_KPH:
        return _IMPLICIT_KPH[text]
    if ":" in text:
        zone = text.split(":", 1)[1].lower()
        zm = _ZONE_NUMBER.search(zone)
        if zm:
            return float(zm.group(1))
        return _IMPLICIT_ZONE_KPH.get(zone, math.nan)
    return math.nan


def parse_maxspeed_kph(value: str | None) -> float:
    """A ``maxspeed`` tag in km/h, NaN when it gives no number.

    Handles "50", "50 mph", "20 knots", "FR:urban", "RU:rural", "DE:zone30",
    "walk", and lists ("50;30", per-lane "50|30": the lowest).  "none",
    "signals" and "variable" give NaN, i.e. the class default.
    """
    if not value:
        return math.nan
    speeds = [_parse_one_speed(part) for part in re.split(r"[;|]", value)]
    speeds = [s for s in speeds if not math.isnan(s)]
    return min(speeds) if speeds else math.nan


def _parse_lanes(value: str | None) -> int:
    """A lane count tag as an int in 1..12, 0 when missing or unreadable."""
    if not value:
        return 0
    counts = []
    for part in value.split(";"):
        try:
            n = float(part.strip())
        except ValueError:
            continue
        if math.isfinite(n) and n > 0:
            counts.append(n)
    return int(min(max(math.ceil(min(counts)), 1), _MAX_LANES)) if counts else 0


def _oneway(tags: dict[str, str]) -> int:
    """+1 travel along the node order only, -1 against it only, 0 both ways."""
    value = tags.get("oneway")
    if value in _ONEWAY_FORWARD:
        return 1
    if value in _ONEWAY_BACKWARD:
        return -1
    if value == "no":
        return 0
    if tags.get("junction") in _ONEWAY_JUNCTIONS or tags.get("highway") == "motorway":
        return 1
    return 0


def _direction_lanes(tags: dict[str, str], oneway: int, default: int) -> tuple[int, int]:
    """Lanes along and against the node order (0 where travel is not allowed).

    A two-way road's total is split evenly, rounding up, unless
    ``lanes:forward``/``lanes:backward`` say otherwise.
    """
    total = _parse_lanes(tags.get("lanes"))
    fwd = _parse_lanes(tags.get("lanes:forward"))
    bwd = _parse_lanes(tags.get("lanes:backward"))
    if oneway == 1:
        return (total or fwd or default), 0
    if oneway == -1:
        return 0, (total or bwd or default)
    if fwd and bwd:
        return fwd, bwd
    if total:
        if fwd:
            return fwd, max(total - fwd, 1)
        if bwd:
            return max(total - bwd, 1), bwd
        half = max(math.ceil(total / 2), 1)
        return half, half
    return (fwd or default), (bwd or default)


def _flag(value: str | None) -> bool:
    return value is not None and value not in ("no", "false", "0")


# --------------------------------------------------------------------------- network


@dataclass
class ShortestPath:
    """A route: node indices, edge indices and its total cost (m or s; inf if none)."""

    nodes: np.ndarray
    edges: np.ndarray
    cost: float

    @property
    def found(self) -> bool:
        return bool(np.isfinite(self.cost))


_WEIGHTS = ("length_m", "travel_time_s")
_FORMAT = "twin.road_network/1"


@dataclass(eq=False)
class RoadNetwork:
    """Directed road graph in a metric CRS.

    Edge ``e`` runs from node ``edge_u[e]`` to ``edge_v[e]`` along
    ``geometry[e]``; ``indptr``/``indices``/``csr_edge`` list the edges leaving
    each node (node ``i``'s are ``csr_edge[indptr[i]:indptr[i+1]]``).
    """

    crs: CRS
    node_osm_id: np.ndarray       # int64 (n,)
    node_xy: np.ndarray           # float64 (n, 2), CRS units (m)
    node_z: np.ndarray            # float32 (n,), m above datum; NaN without a DEM
    edge_u: np.ndarray            # int64 (m,)
    edge_v: np.ndarray            # int64 (m,)
    geometry: np.ndarray          # shapely LineStrings (m,), from u to v
    length_m: np.ndarray          # float64 (m,)
    osm_way_id: np.ndarray        # int64 (m,)
    name: np.ndarray              # object (m,): str or None
    road_class: np.ndarray        # int8 (m,): index into road_class_names
    lanes: np.ndarray             # int8 (m,): lanes in this direction
    free_speed_mps: np.ndarray    # float64 (m,)
    capacity_vph: np.ndarray      # float32 (m,): vehicles per hour in this direction
    oneway: np.ndarray            # bool (m,): the road allows only this direction
    reversed: np.ndarray          # bool (m,): runs against the OSM node order
    bridge: np.ndarray            # bool (m,)
    tunnel: np.ndarray            # bool (m,)
    road_class_names: tuple[str, ...] = _CLASS_NAMES
    indptr: np.ndarray = field(init=False, repr=False)
    indices: np.ndarray = field(init=False, repr=False)
    csr_edge: np.ndarray = field(init=False, repr=False)
    _cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        order = np.argsort(self.edge_u, kind="stable")
        counts = np.bincount(self.edge_u, minlength=self.n_nodes)
        self.indptr = np.zeros(self.n_nodes + 1, dtype=np.int64)
        np.cumsum(counts, out=self.indptr[1:])
        self.indices = self.edge_v[order].astype(np.int64)
        self.csr_edge = order.astype(np.int64)

    # ----------------------------------------------------------------- sizes and derived
    @property
    def n_nodes(self) -> int:
        return int(self.node_osm_id.size)

    @property
    def n_edges(self) -> int:
        return int(self.edge_u.size)

    @property
    def travel_time_s(self) -> np.ndarray:
        """Free-flow travel time per edge (s)."""
        return self.length_m / self.free_speed_mps

    @property
    def z_u(self) -> np.ndarray:
        """Elevation at each edge's start node (m)."""
        return self.node_z[self.edge_u]

    @property
    def z_v(self) -> np.ndarray:
        """Elevation at each edge's end node (m)."""
        return self.node_z[self.edge_v]

    @property
    def total_lane_km(self) -> float:
        """Lane length summed over both directions (km)."""
        return float(np.sum(self.length_m * self.lanes) / 1000.0)

    # ----------------------------------------------------------------- subsets
    def subset_nodes(self, keep: np.ndarray) -> RoadNetwork:
        """The network induced by the nodes where ``keep`` is true."""
        keep = np.asarray(keep, dtype=bool)
        new_index = np.cumsum(keep) - 1
        e = np.flatnonzero(keep[self.edge_u] & keep[self.edge_v])
        return RoadNetwork(
            crs=self.crs,
            node_osm_id=self.node_osm_id[keep],
            node_xy=self.node_xy[keep],
            node_z=self.node_z[keep],
            edge_u=new_index[self.edge_u[e]],
            edge_v=new_index[self.edge_v[e]],
            **{name: getattr(self, name)[e] for name in _EDGE_FIELDS},
            road_class_names=self.road_class_names,
        )

    def strongly_connected_labels(self) -> np.ndarray:
        """Strongly connected component label per node."""
        adj = csr_matrix(
            (np.ones(self.n_edges, dtype=np.int8), (self.edge_u, self.edge_v)),
            shape=(self.n_nodes, self.n_nodes),
        )
        _, labels = connected_components(adj, directed=True, connection="strong")
        return labels

    def largest_strongly_connected(self) -> RoadNetwork:
        """The largest part in which every node can reach every other."""
        if self.n_nodes == 0:
            return self
        labels = self.strongly_connected_labels()
        largest = np.argmax(np.bincount(labels))
        return self.subset_nodes(labels == largest)

    # ----------------------------------------------------------------- queries
    def nearest_node(self, x: float | np.ndarray, y: float | np.ndarray) -> int | np.ndarray:
        """Index of the node closest to each point (CRS coordinates)."""
        tree = self._cache.get("kdtree")
        if tree is None:
            tree = self._cache["kdtree"] = cKDTree(self.node_xy)
        xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        _, idx = tree.query(np.column_stack([xs.ravel(), ys.ravel()]))
        idx = idx.astype(np.int64)
        return int(idx[0]) if xs.ndim == 0 else idx.reshape(xs.shape)

    def _weights(self, weight: str) -> np.ndarray:
        if weight not in _WEIGHTS:
            raise ValueError(f"weight must be one of {_WEIGHTS}, not {weight!r}")
        return self.length_m if weight == "length_m" else self.travel_time_s

    def _graph(self, weight: str) -> tuple[csr_matrix, np.ndarray, np.ndarray]:
        """Sparse matrix with the cheapest of any parallel edges, and the map back.

        Returns the matrix, the sorted ``u * n + v`` keys of its entries and the
        edge id behind each key.
        """
        cached = self._cache.get(("graph", weight))
        if cached is not None:
            return cached
        w = self._weights(weight)
        n = self.n_nodes
        e = np.flatnonzero(self.edge_u != self.edge_v)
        e = e[np.lexsort((w[e], self.edge_v[e], self.edge_u[e]))]
        keys = self.edge_u[e] * n + self.edge_v[e]
        first = np.ones(keys.size, dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        e, keys = e[first], keys[first]
        # scipy may drop explicit zeros; a zero-length edge still connects.
        data = np.maximum(w[e], 1e-9)
        mat = csr_matrix((data, (self.edge_u[e], self.edge_v[e])), shape=(n, n))
        cached = self._cache[("graph", weight)] = (mat, keys, e)
        return cached

    def shortest_path(self, src_node: int, dst_node: int, weight: str = "length_m") -> ShortestPath:
        """Cheapest route between two nodes by length (m) or free-flow time (s)."""
        mat, keys, key_edge = self._graph(weight)
        dist, pred = dijkstra(mat, directed=True, indices=int(src_node), return_predecessors=True)
        if not np.isfinite(dist[dst_node]):
            empty = np.zeros(0, dtype=np.int64)
            return ShortestPath(empty, empty, math.inf)
        nodes = [int(dst_node)]
        while nodes[-1] != src_node:
            nodes.append(int(pred[nodes[-1]]))
        path = np.asarray(nodes[::-1], dtype=np.int64)
        edges = key_edge[np.searchsorted(keys, path[:-1] * self.n_nodes + path[1:])]
        cost = float(np.sum(self._weights(weight)[edges]))
        return ShortestPath(path, edges.astype(np.int64), cost)

    def shortest_path_costs(self, sources: np.ndarray | list[int] | int,
                            weight: str = "length_m") -> np.ndarray:
        """Cost (m or s) from each source to every node, shape (n_sources, n_nodes); inf if unreachable."""
        mat, _, _ = self._graph(weight)
        src = np.atleast_1d(np.asarray(sources, dtype=np.int64))
        return np.atleast_2d(dijkstra(mat, directed=True, indices=src))

    # ----------------------------------------------------------------- export
    def to_geodataframe(self) -> gpd.GeoDataFrame:
        """Edges with their attributes, for drawing and inspection."""
        names = np.asarray(self.road_class_names, dtype=object)
        data = {
            "u": self.edge_u, "v": self.edge_v,
            "osm_way_id": self.osm_way_id,
            "name": pd.Series(self.name, dtype=object),
            "road_class": pd.Series(names[self.road_class] if self.n_edges else [], dtype=object),
            "lanes": self.lanes, "free_speed_mps": self.free_speed_mps,
            "capacity_vph": self.capacity_vph, "length_m": self.length_m,
            "travel_time_s": self.travel_time_s, "oneway": self.oneway,
            "reversed": self.reversed, "bridge": self.bridge, "tunnel": self.tunnel,
            "z_u": self.z_u, "z_v": self.z_v,
        }
        return gpd.GeoDataFrame(data, geometry=self.geometry, crs=self.crs)

    def nodes_geodataframe(self) -> gpd.GeoDataFrame:
        """Nodes as points with their OSM id and elevation."""
        return gpd.GeoDataFrame(
            {"osm_id": self.node_osm_id, "z": self.node_z},
            geometry=shapely.points(self.node_xy), crs=self.crs,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to one ``.npz`` file (no pickles), atomically."""
        p = Path(path)
        wkb = shapely.to_wkb(self.geometry)
        sizes = np.fromiter((len(b) for b in wkb), dtype=np.int64, count=len(wkb))
        wkb_offsets = np.zeros(len(wkb) + 1, dtype=np.int64)
        np.cumsum(sizes, out=wkb_offsets[1:])
        has_name = np.asarray([n is not None for n in self.name], dtype=bool)
        arrays = {
            "format": np.array(_FORMAT),
            "crs_wkt": np.array(self.crs.to_wkt()),
            "road_class_names": np.array(self.road_class_names, dtype=str),
            "node_osm_id": self.node_osm_id, "node_xy": self.node_xy, "node_z": self.node_z,
            "edge_u": self.edge_u, "edge_v": self.edge_v,
            "geometry_wkb": np.frombuffer(b"".join(wkb), dtype=np.uint8),
            "geometry_offsets": wkb_offsets,
            "name": np.array([n if n is not None else "" for n in self.name], dtype=str),
            "has_name": has_name,
        }
        arrays.update({k: getattr(self, k) for k in _EDGE_FIELDS if k not in ("geometry", "name")})
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        tmp = p.with_name(f".{os.getpid()}.partial.{p.name}")
        try:
            tmp.write_bytes(buf.getvalue())
            os.replace(tmp, p)
        finally:
            if tmp.exists():
                tmp.unlink()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RoadNetwork:
        """Read a network written by :meth:`save`."""
        p = Path(path)
        try:
            z = np.load(p, allow_pickle=False)
            fmt = str(z["format"])
        except (OSError, ValueError, KeyError):
            raise input_error(p, "", "is not a saved road network; delete it to rebuild the cache") from None
        if fmt != _FORMAT:
            raise input_error(p, "format", f"{fmt!r} is not {_FORMAT!r}; delete it to rebuild the cache")
        with z:
            offsets = z["geometry_offsets"]
            raw = z["geometry_wkb"].tobytes()
            wkb = np.array([raw[a:b] for a, b in zip(offsets[:-1], offsets[1:])], dtype=object)
            names = z["name"].astype(object)
            names[~z["has_name"]] = None
            edge = {k: z[k] for k in _EDGE_FIELDS if k not in ("geometry", "name")}
            return cls(
                crs=CRS.from_wkt(str(z["crs_wkt"])),
                node_osm_id=z["node_osm_id"], node_xy=z["node_xy"], node_z=z["node_z"],
                edge_u=z["edge_u"], edge_v=z["edge_v"],
                geometry=shapely.from_wkb(wkb) if wkb.size else np.zeros(0, dtype=object),
                name=names,
                road_class_names=tuple(str(s) for s in z["road_class_names"]),
                **edge,
            )


_EDGE_FIELDS = (
    "geometry", "length_m", "osm_way_id", "name", "road_class", "lanes", "free_speed_mps",
    "capacity_vph", "oneway", "reversed", "bridge", "tunnel",
)


# --------------------------------------------------------------------------- building


@dataclass
class _WayAttributes:
    """Per-way attributes from the tags, in way order."""

    road_class: np.ndarray
    name: np.ndarray
    oneway: np.ndarray
    lanes_fwd: np.ndarray
    lanes_bwd: np.ndarray
    speed_kph: np.ndarray
    bridge: np.ndarray
    tunnel: np.ndarray


def _way_attributes(tags: list[dict[str, str]]) -> _WayAttributes:
    n = len(tags)
    road_class = np.zeros(n, dtype=np.int8)
    name = np.full(n, None, dtype=object)
    oneway = np.zeros(n, dtype=np.int8)
    lanes_fwd = np.zeros(n, dtype=np.int8)
    lanes_bwd = np.zeros(n, dtype=np.int8)
    speed = np.zeros(n, dtype=np.float64)
    bridge = np.zeros(n, dtype=bool)
    tunnel = np.zeros(n, dtype=bool)
    for i, t in enumerate(tags):
        cls = _CLASS_CODE[t["highway"]]
        spec = ROAD_CLASSES[cls]
        road_class[i] = cls
        name[i] = t.get("name")
        oneway[i] = _oneway(t)
        lanes_fwd[i], lanes_bwd[i] = _direction_lanes(t, int(oneway[i]), spec.lanes)
        kph = parse_maxspeed_kph(t.get("maxspeed"))
        speed[i] = spec.speed_kph if math.isnan(kph) else kph
        bridge[i] = _flag(t.get("bridge"))
        tunnel[i] = _flag(t.get("tunnel"))
    return _WayAttributes(road_class, name, oneway, lanes_fwd, lanes_bwd, speed, bridge, tunnel)


def _drop_repeated_nodes(ways: OsmWays) -> tuple[np.ndarray, np.ndarray]:
    """Flat position mask without consecutive repeats of a node, and new offsets."""
    ids = ways.node_ids
    keep = np.ones(ids.size, dtype=bool)
    if ids.size > 1:
        keep[1:] = ids[1:] != ids[:-1]
    keep[ways.node_offsets[:-1]] = True  # a way's first node is never a repeat
    way_of_pos = np.repeat(np.arange(ways.n_ways), np.diff(ways.node_offsets))
    counts = np.bincount(way_of_pos[keep], minlength=ways.n_ways)
    offsets = np.zeros(ways.n_ways + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return keep, offsets


def _check_crs(crs: CRS) -> CRS:
    crs = CRS.from_user_input(crs)
    units = {a.unit_name for a in crs.axis_info[:2]}
    if crs.is_geographic or not units <= {"metre", "meter", "m"}:
        raise input_error(
            "", "crs",
            f"{crs.name} is not a metric projected CRS; the road network needs one "
            "(the local UTM zone, for example)",
        )
    return crs


def build_road_network(
    ways: OsmWays,
    crs: CRS | str,
    *,
    dem: Grid | None = None,
    network_type: str = "drive",
) -> RoadNetwork:
    """The directed car network of the given highway ways, in ``crs`` (metres).

    ``network_type`` is osmnx's ``"drive"`` (no service roads) or
    ``"drive_service"`` (service roads except parking aisles, private and
    emergency access).  Ways are split where a node is shared by two drivable
    ways (or visited twice by one) and at their ends.  Node elevations come
    from ``dem`` (m; NaN without one).
    """
    if network_type not in _EXCLUDED_SERVICE:
        raise ValueError(f"network_type must be one of {tuple(_EXCLUDED_SERVICE)}")
    crs = _check_crs(crs)
    if dem is not None and not CRS.from_user_input(dem.crs).equals(crs, ignore_axis_order=True):
        raise input_error(
            dem.source or "DEM", "crs",
            f"the DEM is in {CRS.from_user_input(dem.crs).name}, the roads in {crs.name}; "
            "read the DEM into the city CRS first",
        )
    drivable = np.fromiter((is_drivable(t, network_type) for t in ways.tags),
                           dtype=bool, count=ways.n_ways)
    ways = ways.subset(drivable)

    keep_pos, offsets = _drop_repeated_nodes(ways)
    counts = np.diff(offsets)
    way_keep = counts >= 2  # a way of one repeated node has no length
    per_pos = np.repeat(way_keep, counts)
    ids = ways.node_ids[keep_pos][per_pos]
    lon = ways.node_lon[keep_pos][per_pos]
    lat = ways.node_lat[keep_pos][per_pos]
    offsets = np.zeros(int(way_keep.sum()) + 1, dtype=np.int64)
    np.cumsum(counts[way_keep], out=offsets[1:])
    way_id = ways.way_id[way_keep]
    attrs = _way_attributes([t for t, k in zip(ways.tags, way_keep) if k])
    n_ways = way_id.size

    transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = transformer.transform(lon, lat)
    xy = np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])

    # Split points: way ends and nodes referenced more than once.
    n_pos = ids.size
    is_split = np.zeros(n_pos, dtype=bool)
    if n_ways:
        is_split[offsets[:-1]] = True
        is_split[offsets[1:] - 1] = True
    _, inverse, ref_count = np.unique(ids, return_inverse=True, return_counts=True)
    is_split |= ref_count[inverse] >= 2
    split_pos = np.flatnonzero(is_split)
    way_of_pos = np.repeat(np.arange(n_ways), np.diff(offsets))
    same_way = way_of_pos[split_pos[:-1]] == way_of_pos[split_pos[1:]]
    start, end = split_pos[:-1][same_way], split_pos[1:][same_way]
    seg_way = way_of_pos[start]

    # Nodes: the split points, in OSM id order.
    node_osm_id, node_of_split = np.unique(ids[split_pos], return_inverse=True)
    node_at_pos = np.full(n_pos, -1, dtype=np.int64)
    node_at_pos[split_pos] = node_of_split
    first_pos = np.zeros(node_osm_id.size, dtype=np.int64)
    first_pos[node_of_split[::-1]] = split_pos[::-1]
    node_xy = xy[first_pos]
    node_z = (np.asarray(dem.sample(node_xy[:, 0], node_xy[:, 1]), dtype=np.float32)
              if dem is not None else np.full(node_osm_id.size, np.nan, dtype=np.float32))

    # Segment geometries, along the node order.
    n_pts = end - start + 1
    seg_of_pt = np.repeat(np.arange(start.size), n_pts)
    pt_starts = np.zeros(start.size, dtype=np.int64)
    np.cumsum(n_pts[:-1], out=pt_starts[1:])
    pos = np.repeat(start, n_pts) + (np.arange(seg_of_pt.size) - np.repeat(pt_starts, n_pts))
    seg_geom = (shapely.linestrings(xy[pos], indices=seg_of_pt) if start.size
                else np.zeros(0, dtype=object))
    seg_len = shapely.length(seg_geom).astype(np.float64)

    # Directed edges: along the node order where allowed, then against it.
    ow = attrs.oneway[seg_way]
    fwd = np.flatnonzero(ow >= 0)
    bwd = np.flatnonzero(ow <= 0)
    seg = np.concatenate([fwd, bwd])
    is_rev = np.concatenate([np.zeros(fwd.size, bool), np.ones(bwd.size, bool)])
    u_seg, v_seg = node_at_pos[start], node_at_pos[end]
    w = seg_way[seg]
    geometry = seg_geom[seg].copy()
    if bwd.size:
        geometry[fwd.size:] = shapely.reverse(seg_geom[bwd])
    lanes = np.where(is_rev, attrs.lanes_bwd[w], attrs.lanes_fwd[w]).astype(np.int8)
    cls = attrs.road_class[w]
    per_lane = np.array([c.capacity_per_lane_vph for c in ROAD_CLASSES], dtype=np.float32)
    return RoadNetwork(
        crs=crs,
        node_osm_id=node_osm_id.astype(np.int64),
        node_xy=node_xy,
        node_z=node_z,
        edge_u=np.where(is_rev, v_seg[seg], u_seg[seg]).astype(np.int64),
        edge_v=np.where(is_rev, u_seg[seg], v_seg[seg]).astype(np.int64),
        geometry=geometry,
        length_m=seg_len[seg],
        osm_way_id=way_id[w].astype(np.int64),
        name=attrs.name[w],
        road_class=cls,
        lanes=lanes,
        free_speed_mps=attrs.speed_kph[w] / 3.6,
        capacity_vph=lanes.astype(np.float32) * per_lane[cls],
        oneway=attrs.oneway[w] != 0,
        reversed=is_rev,
        bridge=attrs.bridge[w],
        tunnel=attrs.tunnel[w],
    )
