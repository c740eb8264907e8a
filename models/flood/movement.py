"""Where responders and evacuees can go while the water rises.

The movement network is the city's road graph where it has one; where it has
none (the Carlisle sample) it is a lattice over the flood grid: one node per
block of ``spacing_m``, links to the eight neighbours, no nodes on water.
Either way every link knows the flood cells under it, so the water on a link
is the deepest cell it crosses, and the same rules apply:

* vehicles slow down with depth as Pregnolato et al. (2017) measured, the
  speed limit on a flooded road being v(d) = 0.0009 d^2 - 0.5529 d + 86.9448
  km/h for d in mm, and stop above ``vehicle_limit_m`` (0.3 m in that study);
* pedestrians walk at their pace and stop above ``walk_limit_m``;
* closed links are impassable to both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

VEHICLE_LIMIT_M = 0.3
"""Depth above which a road is impassable to cars (Pregnolato et al. 2017: 300 mm)."""


@njit(cache=True)
def _speed_limit_mps(depth_m: float) -> float:
    """Pregnolato et al. (2017) speed limit on a flooded road (m/s) at one depth; 0 from 0.3 m on."""
    d_mm = max(depth_m * 1000.0, 0.0)
    if not d_mm < 300.0:
        return 0.0
    kph = 0.0009 * (d_mm * d_mm) - 0.5529 * d_mm + 86.9448
    return max(kph, 0.0) / 3.6


@njit(cache=True)
def _speed_limits_mps(depth_m: np.ndarray) -> np.ndarray:
    out = np.empty(depth_m.size)
    for i in range(depth_m.size):
        out[i] = _speed_limit_mps(depth_m[i])
    return out


def flooded_speed_limit_mps(depth_m: np.ndarray | float) -> np.ndarray:
    """Pregnolato et al. (2017) speed limit on a flooded road (m/s); 0 from 0.3 m on."""
    depth = np.asarray(depth_m, dtype=np.float64)
    return _speed_limits_mps(depth.ravel()).reshape(depth.shape)


@dataclass
class Route:
    """A path over links: the nodes passed, the links taken and the time it takes now (s)."""

    nodes: np.ndarray
    links: np.ndarray
    time_s: float

    @property
    def found(self) -> bool:
        return math.isfinite(self.time_s)


ON_FOOT_MPS = 1.4
"""Pace of the last stretch from where a vehicle stops to the place of work (m/s)."""


@dataclass(frozen=True)
class Approach:
    """Where responders can leave their vehicle for a place: nodes near it and the walk from each (s).

    Police put barriers up at the edge of the water and pumps draw through
    hoses, so a crew need not drive into the flooded place itself.
    """

    nodes: np.ndarray
    walk_s: np.ndarray

    def best(self, reach_s: np.ndarray) -> tuple[int, float]:
        """(node, total time s) of the quickest way in given the drive times to every node; time inf if none."""
        total = reach_s[self.nodes] + self.walk_s
        i = int(np.argmin(total))
        return int(self.nodes[i]), float(total[i])


@dataclass
class MovementNetwork:
    """Directed links with their length, free speed and the flood cells under them."""

    kind: str                       # "roads" or "grid"
    node_xy: np.ndarray             # (n, 2) m
    link_u: np.ndarray              # (m,) int64
    link_v: np.ndarray              # (m,) int64
    length_m: np.ndarray            # (m,)
    free_speed_mps: np.ndarray      # (m,)
    cell_ptr: np.ndarray            # (m + 1,) into cell_idx
    cell_idx: np.ndarray            # flat flood-cell indices under each link
    name: np.ndarray | None = None  # road names, where there are roads
    road_of_link: np.ndarray = field(init=False, repr=False)
    """Links joining the same two nodes (both directions of a street) are one road."""
    _tree: cKDTree | None = field(default=None, init=False, repr=False)
    _layout: tuple | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        lo, hi = np.minimum(self.link_u, self.link_v), np.maximum(self.link_u, self.link_v)
        _, self.road_of_link = np.unique(lo * self.n_nodes + hi, return_inverse=True)
        self.road_of_link = self.road_of_link.astype(np.int64)

    @property
    def n_roads(self) -> int:
        return int(self.road_of_link.max()) + 1 if self.road_of_link.size else 0

    def road_length_m(self) -> np.ndarray:
        """Length of each road (m): the shortest of its links."""
        out = np.full(self.n_roads, np.inf)
        np.minimum.at(out, self.road_of_link, self.length_m)
        return out

    def road_depth(self, link_depth_m: np.ndarray) -> np.ndarray:
        """Deepest water (m) on each road, over its links."""
        return _deepest_per_road(np.ascontiguousarray(link_depth_m, dtype=np.float64), self.road_of_link,
                                 self.n_roads)

    def road_midpoints(self) -> np.ndarray:
        """(n_roads, 2) midpoint of each road."""
        first = np.zeros(self.n_roads, dtype=np.int64)
        first[self.road_of_link[::-1]] = np.arange(self.n_links)[::-1]
        return 0.5 * (self.node_xy[self.link_u[first]] + self.node_xy[self.link_v[first]])

    @property
    def n_nodes(self) -> int:
        return int(self.node_xy.shape[0])

    @property
    def n_links(self) -> int:
        return int(self.link_u.size)

    # ---- building --------------------------------------------------------------------

    @classmethod
    def from_roads(cls, network, cell_of_points, cell_size_m: float) -> MovementNetwork:
        """The city's road graph; each link sampled every half cell along its line."""
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        counts = np.zeros(network.n_edges, dtype=np.int64)
        for e, geom in enumerate(network.geometry):
            n = max(int(math.ceil(geom.length / (0.5 * cell_size_m))), 1)
            pts = np.asarray([geom.interpolate(d).coords[0] for d in np.linspace(0.0, geom.length, n + 1)])
            xs.append(pts[:, 0])
            ys.append(pts[:, 1])
            counts[e] = n + 1
        cells = cell_of_points(np.concatenate(xs), np.concatenate(ys)) if xs else np.zeros(0, np.int64)
        ptr = np.zeros(network.n_edges + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        return cls("roads", network.node_xy.copy(), network.edge_u.astype(np.int64), network.edge_v.astype(np.int64),
                   network.length_m.astype(np.float64), network.free_speed_mps.astype(np.float64), ptr,
                   cells.astype(np.int64), name=network.name)

    @classmethod
    def lattice(cls, open_cells: np.ndarray, transform, cell_size_m: float, *, spacing_m: float,
                speed_mps: float, uncrossable: np.ndarray | None = None) -> MovementNetwork:
        """A lattice over the open cells of a grid: nodes every ``spacing_m``, links to 8 neighbours.

        Nodes sit on open cells that are not ``uncrossable`` (rivers); a link
        that would cross an uncrossable cell is left out (without a road layer
        nothing says where the bridges are).
        """
        if uncrossable is not None:
            open_cells = open_cells & ~uncrossable
        rows, cols = open_cells.shape
        k = max(int(round(spacing_m / cell_size_m)), 1)
        centre_r = np.arange(k // 2, rows, k)
        centre_c = np.arange(k // 2, cols, k)
        rr, cc = np.meshgrid(centre_r, centre_c, indexing="ij")
        ok = open_cells[rr, cc]
        node_id = np.full(rr.shape, -1, dtype=np.int64)
        node_id[ok] = np.arange(int(ok.sum()))
        x, y = transform @ (cc[ok] + 0.5, rr[ok] + 0.5)
        node_xy = np.column_stack([x, y])
        us, vs = [], []
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            b = _shifted(node_id, dr, dc)
            both = (node_id >= 0) & (b >= 0)
            us.append(node_id[both])
            vs.append(b[both])
        u = np.concatenate(us)
        v = np.concatenate(vs)
        node_rc = np.column_stack([rr[ok], cc[ok]])
        steps = np.linspace(0.0, 1.0, k + 1)
        ru = node_rc[u][:, 0][:, None] + (node_rc[v][:, 0] - node_rc[u][:, 0])[:, None] * steps
        cu = node_rc[u][:, 1][:, None] + (node_rc[v][:, 1] - node_rc[u][:, 1])[:, None] * steps
        samples = (np.rint(ru).astype(np.int64) * cols + np.rint(cu).astype(np.int64))
        # keep the open cells only (a link may graze a wall; the water on it is on the open cells)
        open_flat = open_cells.reshape(-1)
        if uncrossable is not None:
            crosses = uncrossable.reshape(-1)[samples].any(axis=1)
            u, v, samples = u[~crosses], v[~crosses], samples[~crosses]
        keep = open_flat[samples]
        length = np.hypot(*(node_xy[v] - node_xy[u]).T)
        # links in both directions, each with the open cells it crosses
        u2, v2 = np.concatenate([u, v]), np.concatenate([v, u])
        keep2 = np.concatenate([keep, keep])
        ptr = np.zeros(u2.size + 1, dtype=np.int64)
        np.cumsum(keep2.sum(axis=1), out=ptr[1:])
        return cls("grid", node_xy, u2, v2, np.concatenate([length, length]),
                   np.full(u2.size, float(speed_mps)), ptr, np.concatenate([samples, samples])[keep2])

    # ---- water on the links ------------------------------------------------------------

    def link_depth(self, depth_flat: np.ndarray) -> np.ndarray:
        """Deepest water (m) under each link."""
        return _deepest_per_link(np.ascontiguousarray(depth_flat, dtype=np.float64), self.cell_idx, self.cell_ptr)

    def vehicle_time_s(self, depth_m: np.ndarray, closed: np.ndarray | None = None,
                       limit_m: float = VEHICLE_LIMIT_M) -> np.ndarray:
        """Travel time per link for a vehicle now (s); inf where closed or deeper than ``limit_m``."""
        closed_flags = np.zeros(0, dtype=np.bool_) if closed is None else np.asarray(closed, dtype=np.bool_)
        return _vehicle_times(np.asarray(depth_m, dtype=np.float64), self.free_speed_mps, self.length_m,
                              closed_flags, float(limit_m))

    def walk_time_s(self, depth_m: np.ndarray, speed_mps: float, limit_m: float,
                    closed: np.ndarray | None = None) -> np.ndarray:
        """Travel time per link on foot (s); inf where closed or deeper than ``limit_m``."""
        blocked = depth_m > limit_m
        if closed is not None:
            blocked |= closed
        return np.where(blocked, np.inf, self.length_m / speed_mps)

    # ---- routing -------------------------------------------------------------------------

    def graph(self, time_s: np.ndarray) -> TravelGraph:
        """The network with these link times, for any number of route and reach queries."""
        return TravelGraph(self, time_s)

    def times_from(self, sources: np.ndarray, time_s: np.ndarray, *, reverse: bool = False) -> np.ndarray:
        """Quickest time (s) from each source to every node (to, with ``reverse``); inf if cut off."""
        return self.graph(time_s).times_from(sources, reverse=reverse)

    def route(self, src: int, dst: int, time_s: np.ndarray) -> Route:
        """The quickest route now from node ``src`` to node ``dst``."""
        return self.graph(time_s).route(src, dst)

    def _pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Links sorted by (from, to) node, the start of each run of parallel links, and the CSR layout.

        Computed once: every travel graph reuses it, so building one costs a
        gather and a reduction instead of a sort of all links.
        """
        if self._layout is None:
            e = np.flatnonzero(self.link_u != self.link_v)
            e = e[np.lexsort((self.link_v[e], self.link_u[e]))]
            keys = self.link_u[e] * self.n_nodes + self.link_v[e]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            first = e[starts]
            indptr = np.zeros(self.n_nodes + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.link_u[first], minlength=self.n_nodes), out=indptr[1:])
            self._layout = (e, starts, indptr, self.link_v[first].astype(np.int32))
        return self._layout

    def nearest_node(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Node nearest to each point."""
        if self._tree is None:
            self._tree = cKDTree(self.node_xy)
        _, idx = self._tree.query(np.column_stack([np.atleast_1d(x), np.atleast_1d(y)]))
        return np.asarray(idx, dtype=np.int64)

    def approach(self, x: float, y: float, radius_m: float) -> Approach:
        """Nodes within ``radius_m`` of a point (at least the nearest), with the walk from each."""
        if self._tree is None:
            self._tree = cKDTree(self.node_xy)
        near = np.asarray(self._tree.query_ball_point([x, y], radius_m), dtype=np.int64)
        if near.size == 0:
            near = self.nearest_node(x, y)
        near = np.sort(near)
        walk = np.hypot(self.node_xy[near, 0] - x, self.node_xy[near, 1] - y) / ON_FOOT_MPS
        return Approach(near, walk)

    def road_km(self, road_mask: np.ndarray) -> float:
        """Length (km) of the roads in ``road_mask``."""
        return float(self.road_length_m()[road_mask].sum()) / 1000.0


@njit(cache=True)
def _deepest_per_link(depth_flat: np.ndarray, cell_idx: np.ndarray, cell_ptr: np.ndarray) -> np.ndarray:
    """Deepest of each link's cells (0 for a link over no cell), in one pass without a gathered copy."""
    n = cell_ptr.size - 1
    out = np.zeros(n)
    for link in range(n):
        deepest = 0.0
        for k in range(cell_ptr[link], cell_ptr[link + 1]):
            deepest = max(deepest, depth_flat[cell_idx[k]])
        out[link] = deepest
    return out


@njit(cache=True)
def _vehicle_times(depth_m: np.ndarray, free_speed_mps: np.ndarray, length_m: np.ndarray, closed: np.ndarray,
                   limit_m: float) -> np.ndarray:
    """Seconds per link for a vehicle: free speed capped by the flooded-road limit; inf where closed or too deep.

    ``closed`` empty: nothing closed.
    """
    out = np.empty(depth_m.size)
    for i in range(depth_m.size):
        speed = min(free_speed_mps[i], _speed_limit_mps(depth_m[i]))
        if depth_m[i] > limit_m or (closed.size and closed[i]):
            speed = 0.0
        out[i] = length_m[i] / max(speed, 1e-12) if speed > 0.0 else np.inf
    return out


@njit(cache=True)
def _deepest_per_road(link_depth: np.ndarray, road_of_link: np.ndarray, n_roads: int) -> np.ndarray:
    """Deepest of each road's links (0 for a road with none)."""
    out = np.zeros(n_roads)
    for link in range(link_depth.size):
        road = road_of_link[link]
        out[road] = max(out[road], link_depth[link])
    return out


def _shifted(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``a`` moved so that element [r, c] holds a[r + dr, c + dc] (-1 outside)."""
    out = np.full_like(a, -1)
    rows, cols = a.shape
    r0, r1 = max(0, -dr), rows - max(0, dr)
    c0, c1 = max(0, -dc), cols - max(0, dc)
    out[r0:r1, c0:c1] = a[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
    return out


class TravelGraph:
    """The movement network with the link times of one moment: reach and routes, Dijkstra results cached."""

    def __init__(self, network: MovementNetwork, time_s: np.ndarray) -> None:
        self.network = network
        self.time_s = time_s
        order, starts, indptr, indices = network._pairs()
        t = np.asarray(time_s, dtype=np.float64)[order]
        data = np.minimum.reduceat(t, starts) if t.size else t
        # scipy drops explicit zeros (no edge) and never relaxes through inf: keep both meanings
        n = network.n_nodes
        self.matrix = csr_matrix((np.maximum(data, 1e-9), indices, indptr), shape=(n, n))
        self._transposed: csr_matrix | None = None
        self._cache: dict[tuple[int, bool], np.ndarray] = {}

    def times_from(self, sources: np.ndarray, *, reverse: bool = False) -> np.ndarray:
        """Quickest time (s) from each source to every node (to it, with ``reverse``); inf if cut off."""
        src = np.atleast_1d(np.asarray(sources, dtype=np.int64))
        missing = [int(s) for s in src if (int(s), reverse) not in self._cache]
        if missing:
            mat = self._reversed() if reverse else self.matrix
            for s, row in zip(missing, np.atleast_2d(dijkstra(mat, directed=True, indices=missing))):
                self._cache[(s, reverse)] = row
        return np.stack([self._cache[(int(s), reverse)] for s in src])

    def _reversed(self) -> csr_matrix:
        """The graph with every link turned round (times to a node from every other), built once."""
        if self._transposed is None:
            self._transposed = self.matrix.T.tocsr()
        return self._transposed

    def trees_to(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(quickest time s from every node to each target, the next node on that way: -1 at the target or
        where cut off), one row per target."""
        dist, pred = dijkstra(self._reversed(), directed=True, indices=np.asarray(targets, dtype=np.int64),
                              return_predecessors=True)
        return np.atleast_2d(dist), np.where(np.atleast_2d(pred) < 0, -1, np.atleast_2d(pred)).astype(np.int64)

    def links_along(self, nodes: np.ndarray) -> np.ndarray:
        """The quickest link between each two nodes following each other in ``nodes``."""
        links = np.empty(max(nodes.size - 1, 0), dtype=np.int64)
        for i, (u, v) in enumerate(zip(nodes[:-1], nodes[1:])):
            parallel = self._links_between(int(u), int(v))
            links[i] = parallel[np.argmin(self.time_s[parallel])]
        return links

    def route(self, src: int, dst: int) -> Route:
        """The quickest route from node ``src`` to node ``dst`` (the quickest of parallel links)."""
        dist, pred = dijkstra(self.matrix, directed=True, indices=int(src), return_predecessors=True)
        if not np.isfinite(dist[dst]):
            return Route(np.array([src], dtype=np.int64), np.zeros(0, dtype=np.int64), math.inf)
        nodes = [int(dst)]
        while nodes[-1] != src:
            nodes.append(int(pred[nodes[-1]]))
        path = np.asarray(nodes[::-1], dtype=np.int64)
        return Route(path, self.links_along(path), float(dist[dst]))

    def _links_between(self, u: int, v: int) -> np.ndarray:
        """Links from node ``u`` to node ``v`` (parallel links share the pair)."""
        order, starts, indptr, indices = self.network._pairs()
        lo, hi = indptr[u], indptr[u + 1]
        g = lo + int(np.searchsorted(indices[lo:hi], v))
        end = starts[g + 1] if g + 1 < starts.size else order.size
        return order[starts[g]:end]
