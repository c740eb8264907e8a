"""Merged VTK meshes from map features: one PolyData per layer, never one per feature.

Every mesh carries a cell array ``feature`` (int32, index of the source
geometry in the input array) so a picked cell leads back to its feature, and
per-feature colours can be written into a cell array in place.  Work is
vectorised with shapely 2 and NumPy; coordinates are in the project CRS
(metres) and heights in metres, multiplied by ``z_scale`` (vertical
exaggeration) where a function takes one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyvista as pv
import shapely
from vtkmodules.vtkFiltersCore import vtkAppendPolyData

from twin.geo.raster import Grid

ZFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
ZValue = float | np.ndarray | ZFunction

_POLYGON, _MULTIPOLYGON = 3, 6
_LINEAL = (1, 2, 5)  # LineString, LinearRing, MultiLineString


# ----------------------------------------------------------------------------- helpers


def _per_feature(value: float | np.ndarray, n: int, what: str) -> np.ndarray:
    """A scalar or an (n,) array as float64 (n,)."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{what} must be a number or one value per feature ({n}), got shape {arr.shape}")
    return arr


def _padded_cells(counts: np.ndarray, connectivity: np.ndarray) -> np.ndarray:
    """VTK legacy cell array ``[n0, ids..., n1, ids...]`` from cell sizes and point ids."""
    offsets = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    return np.insert(connectivity.astype(np.int64), offsets, counts)


def _polygon_parts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Single polygons (exterior counter-clockwise, holes clockwise) and their source index."""
    types = shapely.get_type_id(geoms)
    if (types == _POLYGON).all():
        parts, index = geoms, np.arange(len(geoms))
    else:
        parts, index = shapely.get_parts(geoms, return_index=True)
    keep = (shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)
    return shapely.orient_polygons(parts[keep]), index[keep]


def triangulate(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Constrained Delaunay triangles of polygons (holes respected), counter-clockwise.

    Returns ``(T, 3, 2)`` vertex coordinates and the index of each triangle's polygon.
    """
    tris = shapely.constrained_delaunay_triangles(polys)
    # Each triangle is a closed ring of 4 coordinates: read them all at once.
    coords, index = shapely.get_coordinates(tris, return_index=True)
    if len(coords) == 0:
        return np.zeros((0, 3, 2)), np.zeros(0, dtype=np.int64)
    xy = coords.reshape(-1, 4, 2)[:, :3].copy()
    index = index[::4]
    a, b, c = xy[:, 0], xy[:, 1], xy[:, 2]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flip = cross < 0
    xy[flip, 1], xy[flip, 2] = c[flip], b[flip]
    keep = cross != 0
    return xy[keep], index[keep]


def _triangle_cells(n_tris: int, start: int = 0, reverse: bool = False) -> np.ndarray:
    ids = np.arange(start, start + 3 * n_tris, dtype=np.int64).reshape(-1, 3)
    if reverse:
        ids = ids[:, ::-1]
    return np.column_stack([np.full(n_tris, 3, dtype=np.int64), ids]).ravel()


def _empty_polydata() -> pv.PolyData:
    mesh = pv.PolyData()
    mesh.cell_data["feature"] = np.zeros(0, dtype=np.int32)
    return mesh


def append_polydata(meshes: list[pv.PolyData]) -> pv.PolyData:
    """Append PolyData keeping cell data in VTK's cell order (verts, lines, polys)
    and cell normals, without merging points."""
    append = vtkAppendPolyData()
    for mesh in meshes:
        append.AddInputData(mesh)
    append.Update()
    out = pv.wrap(append.GetOutput())
    if "Normals" in out.cell_data:
        out.GetCellData().SetActiveNormals("Normals")
    return out


# ----------------------------------------------------------------------------- prisms


def extrude_polygons(geoms: np.ndarray, base_z: float | np.ndarray, top_z: float | np.ndarray, *,
                     z_scale: float = 1.0, floor: bool = False) -> pv.PolyData:
    """Buildings as one merged prism mesh: flat roofs at ``top_z``, one wall quad per ring edge.

    ``geoms``: (n,) Polygons/MultiPolygons (others are skipped); ``base_z`` and
    ``top_z``: metres, a number or one per feature, multiplied by ``z_scale``.
    ``floor`` closes the prisms at the base (for volumes; unseen in a city view).
    Cell data: ``feature`` (int32 index into ``geoms``) and outward unit
    ``Normals`` (roofs up, walls horizontal), so lighting needs no normal filter.
    """
    geoms = np.asarray(geoms, dtype=object).ravel()
    n = len(geoms)
    base = _per_feature(base_z, n, "base_z") * z_scale
    top = _per_feature(top_z, n, "top_z") * z_scale
    polys, poly_feature = _polygon_parts(geoms)
    if len(polys) == 0:
        return _empty_polydata()

    tri_xy, tri_poly = triangulate(polys)
    tri_feature = poly_feature[tri_poly]
    n_tris = len(tri_xy)
    roof = np.concatenate([tri_xy.reshape(-1, 2), np.repeat(top[tri_feature], 3)[:, None]], axis=1)

    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    ring_xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    ring_feature = poly_feature[ring_poly][ring_of]
    n_ring = len(ring_xy)
    d = ring_xy[1:] - ring_xy[:-1]
    length = np.hypot(d[:, 0], d[:, 1])
    edge = np.flatnonzero((ring_of[1:] == ring_of[:-1]) & (length > 0))
    n_walls = len(edge)
    bottom = np.column_stack([ring_xy, base[ring_feature]])
    upper = np.column_stack([ring_xy, top[ring_feature]])

    start = 3 * n_tris
    quads = np.column_stack([edge, edge + 1, edge + 1 + n_ring, edge + n_ring]) + start
    faces = [_triangle_cells(n_tris), np.column_stack([np.full(n_walls, 4, dtype=np.int64), quads]).ravel()]
    points = [roof, bottom, upper]
    feature = [tri_feature, ring_feature[edge]]
    wall_normal = np.column_stack([d[edge, 1] / length[edge], -d[edge, 0] / length[edge], np.zeros(n_walls)])
    normals = [np.tile([0.0, 0.0, 1.0], (n_tris, 1)), wall_normal]
    if floor:
        floor_pts = roof.copy()
        floor_pts[:, 2] = np.repeat(base[tri_feature], 3)
        faces.append(_triangle_cells(n_tris, start + 2 * n_ring, reverse=True))
        points.append(floor_pts)
        feature.append(tri_feature)
        normals.append(np.tile([0.0, 0.0, -1.0], (n_tris, 1)))

    mesh = pv.PolyData(np.concatenate(points).astype(np.float64), faces=np.concatenate(faces))
    mesh.cell_data["feature"] = np.concatenate(feature).astype(np.int32)
    mesh.cell_data["Normals"] = np.concatenate(normals).astype(np.float32)
    mesh.GetCellData().SetActiveNormals("Normals")
    return mesh


# ----------------------------------------------------------------------------- level of detail

#: Most boxes in a buildings level-of-detail mesh: about ten triangles each, so a
#: software renderer still draws it in a few tens of milliseconds.
LOD_MAX_BOXES = 5_000
#: Share of those boxes kept for the tallest buildings of a tiled city (its skyline).
LOD_LANDMARK_SHARE = 0.25
#: A footprint filling less of its minimum rotated rectangle than this (an L, a curve)
#: keeps its shape, simplified to LOD_SIMPLIFY_M, instead of becoming a box.
LOD_BOXY = 0.8
LOD_SIMPLIFY_M = 1.0


def box_prisms(corners: np.ndarray, base_z: np.ndarray, top_z: np.ndarray, feature: np.ndarray) -> pv.PolyData:
    """Closed-top boxes (a roof quad and four wall quads, eight shared points each).

    ``corners``: (m, 4, 2) footprint corners, counter-clockwise; ``base_z``,
    ``top_z``: (m,) scene units; ``feature``: (m,) the row each box stands for.
    Cell data ``feature`` and outward ``Normals``, like :func:`extrude_polygons`.
    """
    m = len(corners)
    if m == 0:
        return _empty_polydata()
    bottom = np.concatenate([corners, np.repeat(base_z[:, None, None], 4, axis=1)], axis=2)
    upper = np.concatenate([corners, np.repeat(top_z[:, None, None], 4, axis=1)], axis=2)
    points = np.concatenate([bottom, upper], axis=1).reshape(-1, 3)
    first = (8 * np.arange(m))[:, None]
    k = np.arange(4)
    roof = first + 4 + k
    walls = np.stack([first + k, first + (k + 1) % 4, first + 4 + (k + 1) % 4, first + 4 + k], axis=2)
    quads = np.concatenate([roof[:, None, :], walls], axis=1).reshape(-1, 4)
    edge = np.roll(corners, -1, axis=1) - corners
    length = np.maximum(np.hypot(edge[..., 0], edge[..., 1]), 1e-12)
    wall_normals = np.stack([edge[..., 1] / length, -edge[..., 0] / length, np.zeros((m, 4))], axis=2)
    normals = np.concatenate([np.tile([0.0, 0.0, 1.0], (m, 1, 1)), wall_normals], axis=1).reshape(-1, 3)
    mesh = pv.PolyData(points, faces=np.column_stack([np.full(len(quads), 4, dtype=np.int64), quads]).ravel())
    mesh.cell_data["feature"] = np.repeat(feature, 5).astype(np.int32)
    mesh.cell_data["Normals"] = normals.astype(np.float32)
    mesh.GetCellData().SetActiveNormals("Normals")
    return mesh


def _envelopes(geoms: np.ndarray) -> np.ndarray:
    """Each geometry's minimum rotated rectangle, counter-clockwise (its bounding box when degenerate)."""
    rects = shapely.oriented_envelope(geoms)
    rects = np.where(shapely.get_type_id(rects) == _POLYGON, rects, shapely.box(*shapely.bounds(geoms).T))
    return shapely.orient_polygons(rects)


def _simple_buildings(geoms: np.ndarray, base: np.ndarray, top: np.ndarray, rows: np.ndarray) -> pv.PolyData:
    """Buildings ``rows`` as boxes when their footprint is nearly a rectangle, else as
    their footprint simplified: few cells, and no box swallowing a street or courtyard."""
    rects = _envelopes(geoms[rows])
    boxy = (shapely.area(geoms[rows]) >= LOD_BOXY * shapely.area(rects)) & (shapely.get_num_coordinates(rects) == 5)
    corners = shapely.get_coordinates(shapely.get_exterior_ring(rects[boxy])).reshape(-1, 5, 2)[:, :4]
    boxes = box_prisms(corners, base[rows[boxy]], top[rows[boxy]], rows[boxy])
    shaped = rows[~boxy]
    if len(shaped) == 0:
        return boxes
    prisms = extrude_polygons(shapely.simplify(geoms[shaped], LOD_SIMPLIFY_M), base[shaped], top[shaped])
    prisms.cell_data["feature"] = shaped[prisms.cell_data["feature"]].astype(np.int32)
    return append_polydata([boxes, prisms]) if boxes.n_cells else prisms


def _tiles(xy: np.ndarray, n_tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Square tiles, as small as leaves at most ``n_tiles`` of them occupied: their keys
    and each point's tile (index into the keys)."""
    lo = xy.min(axis=0)
    size = max(float(np.sqrt(np.prod(np.maximum(np.ptp(xy, axis=0), 1.0)) / n_tiles)), 1e-3)
    while True:
        cell = ((xy - lo) // size).astype(np.int64)
        tiles, tile = np.unique(cell[:, 1] * (int(cell[:, 0].max()) + 1) + cell[:, 0], return_inverse=True)
        if len(tiles) <= n_tiles:
            return tiles, tile
        size *= 1.05


def _tile_blocks(xy: np.ndarray, bounds: np.ndarray, area: np.ndarray, base: np.ndarray, top: np.ndarray,
                 n_tiles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Buildings binned into at most ``n_tiles`` square tiles, one block per tile.

    Each block keeps its tile's built area (a rectangle of the buildings' bounding
    box's proportions, around their area-weighted centre) and mean roof height
    weighted by area, so volumes and the streets between blocks survive.
    Returns block corners (m, 4, 2), base and top (m,), and for each block the
    building whose roof is nearest its top (its colour stands for the block).
    """
    tiles, tile = _tiles(xy, max(n_tiles, 1))
    weight = np.maximum(area, 1e-6)
    total = np.bincount(tile, weight)
    centre = np.column_stack([np.bincount(tile, weight * xy[:, 0]), np.bincount(tile, weight * xy[:, 1])]) / total[:, None]
    block_top = np.bincount(tile, weight * top) / total
    block_base = np.full(len(tiles), np.inf)
    np.minimum.at(block_base, tile, base)
    box_lo = np.full((len(tiles), 2), np.inf)
    box_hi = np.full((len(tiles), 2), -np.inf)
    np.minimum.at(box_lo, tile, bounds[:, :2])
    np.maximum.at(box_hi, tile, bounds[:, 2:])
    span = np.maximum(box_hi - box_lo, 1e-3)
    half = span * np.minimum(np.sqrt(total / np.prod(span, axis=1)), 1.0)[:, None] / 2
    centre = np.clip(centre, box_lo + half, box_hi - half)
    sign = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    corners = centre[:, None, :] + sign[None] * half[:, None, :]
    order = np.lexsort((np.abs(top - block_top[tile]), tile))
    first = np.flatnonzero(np.r_[True, tile[order][1:] != tile[order][:-1]])
    return corners, block_base, block_top, order[first]


def buildings_lod(geoms: np.ndarray, base_z: float | np.ndarray, top_z: float | np.ndarray, *,
                  z_scale: float = 1.0, max_boxes: int = LOD_MAX_BOXES) -> pv.PolyData:
    """A cheap stand-in for :func:`extrude_polygons` to draw while the camera moves.

    Up to ``max_boxes`` buildings become one box each (their minimum rotated
    rectangle) or, when far from rectangular, a simplified prism; a bigger city
    keeps its tallest buildings so and bins the rest into per-tile blocks (see
    :func:`_tile_blocks`).  Cell data ``feature`` is the building a cell stands
    for, so colours follow the full mesh; ``Normals`` as in :func:`extrude_polygons`.
    """
    geoms = np.asarray(geoms, dtype=object).ravel()
    n = len(geoms)
    base = _per_feature(base_z, n, "base_z") * z_scale
    top = _per_feature(top_z, n, "top_z") * z_scale
    rows = np.flatnonzero(np.isin(shapely.get_type_id(geoms), (_POLYGON, _MULTIPOLYGON)) & ~shapely.is_empty(geoms))
    if len(rows) <= max_boxes:
        return _simple_buildings(geoms, base, top, rows)
    n_tall = int(max_boxes * LOD_LANDMARK_SHARE)
    tall = rows[np.argsort(base[rows] - top[rows], kind="stable")[:n_tall]]
    rest = np.setdiff1d(rows, tall)
    bounds = shapely.bounds(geoms[rest])
    xy = (bounds[:, :2] + bounds[:, 2:]) / 2
    corners, block_base, block_top, pick = _tile_blocks(xy, bounds, shapely.area(geoms[rest]), base[rest], top[rest],
                                                        max_boxes - n_tall)
    blocks = box_prisms(corners, block_base, block_top, rest[pick])
    return append_polydata([_simple_buildings(geoms, base, top, tall), blocks])


# ----------------------------------------------------------------------------- flat features


def _z_at(z: ZValue, x: np.ndarray, y: np.ndarray, feature: np.ndarray, n: int) -> np.ndarray:
    if callable(z):
        return np.asarray(z(x, y), dtype=float)
    return _per_feature(z, n, "z")[feature]


def polygons_mesh(geoms: np.ndarray, z: ZValue = 0.0, *, z_offset: float = 0.0, z_scale: float = 1.0,
                  max_segment: float | None = None) -> pv.PolyData:
    """Flat, triangulated polygons (water, land use) merged in one mesh.

    ``z``: metres, a number, one per feature, or ``z(x, y)`` sampled at every
    vertex to drape the polygons over terrain; it is multiplied by ``z_scale``
    and ``z_offset`` (metres, not scaled) lifts them off the ground.  Edges are
    split to ``max_segment`` metres first when given so draped outlines follow
    the terrain.  Cell data ``feature``: index into ``geoms``.
    """
    geoms = np.asarray(geoms, dtype=object).ravel()
    polys, poly_feature = _polygon_parts(geoms)
    if max_segment and len(polys):
        polys = shapely.segmentize(polys, max_segment)
    tri_xy, tri_poly = triangulate(polys) if len(polys) else (np.zeros((0, 3, 2)), np.zeros(0, np.int64))
    if len(tri_xy) == 0:
        return _empty_polydata()
    feature = poly_feature[tri_poly]
    xy = tri_xy.reshape(-1, 2)
    zs = _z_at(z, xy[:, 0], xy[:, 1], np.repeat(feature, 3), len(geoms)) * z_scale + z_offset
    mesh = pv.PolyData(np.column_stack([xy, zs]), faces=_triangle_cells(len(tri_xy)))
    mesh.cell_data["feature"] = feature.astype(np.int32)
    return mesh


def lines_mesh(geoms: np.ndarray, z_of_xy: ZFunction | None = None, z_offset: float = 0.0, *,
               z_scale: float = 1.0, max_segment: float | None = None) -> pv.PolyData:
    """Polylines (roads, boundaries) merged in one mesh, draped on the terrain.

    Lines and multi-lines are taken as they are; polygons contribute their
    rings.  ``z_of_xy(x, y)`` gives ground elevation (m) at each vertex (0 when
    None), multiplied by ``z_scale``; ``z_offset`` (m) lifts the line above it.
    Segments longer than ``max_segment`` metres (use the terrain cell size) are
    split so the line follows the ground between vertices.  Cell data
    ``feature``: index into ``geoms``, one polyline cell per part.
    """
    geoms = np.asarray(geoms, dtype=object).ravel()
    kinds = shapely.get_type_id(geoms)
    lines = np.where(np.isin(kinds, (_POLYGON, _MULTIPOLYGON)), shapely.boundary(geoms), geoms)
    parts, feature = shapely.get_parts(lines, return_index=True)
    keep = np.isin(shapely.get_type_id(parts), _LINEAL) & ~shapely.is_empty(parts)
    parts, feature = parts[keep], feature[keep]
    if max_segment and len(parts):
        parts = shapely.segmentize(parts, max_segment)
    xy, part_of = shapely.get_coordinates(parts, return_index=True)
    counts = np.bincount(part_of, minlength=len(parts))
    if len(xy) == 0 or not (counts >= 2).any():
        return _empty_polydata()
    if (counts < 2).any():
        good = counts >= 2
        keep_pt = good[part_of]
        xy, part_of = xy[keep_pt], part_of[keep_pt]
        feature, counts = feature[good], counts[good]
    zs = np.zeros(len(xy)) if z_of_xy is None else np.asarray(z_of_xy(xy[:, 0], xy[:, 1]), dtype=float)
    mesh = pv.PolyData(np.column_stack([xy, zs * z_scale + z_offset]), lines=_padded_cells(counts, np.arange(len(xy))))
    mesh.cell_data["feature"] = feature.astype(np.int32)
    return mesh


def points_mesh(xy: np.ndarray, z: float | np.ndarray = 0.0, *, z_offset: float = 0.0,
                z_scale: float = 1.0) -> pv.PolyData:
    """Points (POIs) as vertex cells, drawn as spheres with ``render_points_as_spheres``.

    ``xy``: (n, 2) metres; ``z``: metres, a number or one per point, times
    ``z_scale`` plus ``z_offset``.  Cell data ``feature``: the point's index.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    zs = _per_feature(z, len(xy), "z") * z_scale + z_offset
    if len(xy) == 0:
        return _empty_polydata()
    mesh = pv.PolyData(np.column_stack([xy, zs]))
    mesh.cell_data["feature"] = np.arange(len(xy), dtype=np.int32)
    return mesh


# ----------------------------------------------------------------------------- terrain


def hillshade(dem_values: np.ndarray, cell_size: float | tuple[float, float], azimuth_deg: float = 315.0,
              altitude_deg: float = 45.0, z_factor: float = 1.0) -> np.ndarray:
    """Horn (1981) hillshade of a north-up grid (row 0 north): 0 (dark) .. 1 (lit).

    ``cell_size``: metres (one number or (dx, dy)); azimuth clockwise from
    north, altitude above the horizon, in degrees; ``z_factor`` exaggerates
    relief.  Flat ground gives sin(altitude); so do NaN cells, and a cell next
    to a NaN cell uses its own value in the NaN's place.
    """
    z = np.asarray(dem_values, dtype=np.float64)
    dx, dy = (cell_size, cell_size) if np.isscalar(cell_size) else cell_size
    missing = np.isnan(z)
    centre = np.where(missing, 0.0, z)
    p = np.pad(z, 1, mode="edge")
    win = {}
    for name, (r, c) in {"a": (0, 0), "b": (0, 1), "c": (0, 2), "d": (1, 0), "f": (1, 2),
                         "g": (2, 0), "h": (2, 1), "i": (2, 2)}.items():
        v = p[r:r + z.shape[0], c:c + z.shape[1]]
        win[name] = np.where(np.isnan(v), centre, v)
    dz_east = ((win["c"] + 2 * win["f"] + win["i"]) - (win["a"] + 2 * win["d"] + win["g"])) / (8.0 * dx)
    dz_north = ((win["a"] + 2 * win["b"] + win["c"]) - (win["g"] + 2 * win["h"] + win["i"])) / (8.0 * dy)
    nx, ny, nz = -dz_east * z_factor, -dz_north * z_factor, np.ones_like(z)
    norm = np.sqrt(nx * nx + ny * ny + 1.0)
    az, alt = np.radians(azimuth_deg), np.radians(altitude_deg)
    light = (np.sin(az) * np.cos(alt), np.cos(az) * np.cos(alt), np.sin(alt))
    shade = (nx * light[0] + ny * light[1] + nz * light[2]) / norm
    shade[missing] = light[2]
    return np.clip(shade, 0.0, 1.0).astype(np.float32)


@dataclass
class TerrainSurface:
    """A DEM decimated by an integer stride, NaN filled by the nearest value, for
    drawing and for draping features on exactly the drawn surface.

    ``values`` (rows, cols) metres at the sampled cell centres ``xs`` (west to
    east) and ``ys`` (north to south); ``valid`` marks cells that held data;
    ``cells`` the flat index of each sample in the full DEM.
    """

    values: np.ndarray
    valid: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    stride: int
    cell_size: tuple[float, float]
    cells: np.ndarray

    @classmethod
    def from_grid(cls, dem: Grid, max_cells: int = 1_000_000) -> "TerrainSurface":
        """Every ``stride``-th cell so that the drawn quads number at most ``max_cells``."""
        from scipy.ndimage import distance_transform_edt

        rows, cols = dem.shape
        stride = 1
        while (len(range(0, rows, stride)) - 1) * (len(range(0, cols, stride)) - 1) > max_cells:
            stride += 1
        r = np.arange(stride // 2, rows, stride) if rows > stride else np.array([rows // 2])
        c = np.arange(stride // 2, cols, stride) if cols > stride else np.array([cols // 2])
        values = np.asarray(dem.values, dtype=np.float32)[np.ix_(r, c)]
        valid = dem.valid_mask()[np.ix_(r, c)] & np.isfinite(values)
        if not valid.any():
            values = np.zeros_like(values)
        elif not valid.all():
            idx = distance_transform_edt(~valid, return_distances=False, return_indices=True)
            values = values[tuple(idx)]
        xs_all, ys_all = dem.cell_centres()
        dx, dy = dem.cell_size
        cells = (r[:, None] * cols + c[None, :]).astype(np.int64)
        return cls(values, valid, xs_all[c], ys_all[r], stride, (dx * stride, dy * stride), cells)

    @property
    def spacing(self) -> float:
        """Distance (m) between samples: the segment length for draping lines."""
        return float(max(self.cell_size))

    def coarser(self, factor: int) -> "TerrainSurface":
        """Every ``factor``-th sample, plus the last row and column so the extent stays the same.

        A sample counts as valid when data lies within ``factor`` samples of
        it, so the coarse quads still cover every valid sample (an irregular
        outline's thin tips too) and reach at most one coarse cell past the
        data, over the nearest-filled heights.  The last step may be shorter
        than the others, so the result is for drawing only: draping and
        :meth:`__call__` assume even spacing.
        """
        from scipy.ndimage import maximum_filter

        rows, cols = self.values.shape
        r, c = _coarse_index(rows, factor), _coarse_index(cols, factor)
        near_data = maximum_filter(self.valid, size=2 * int(factor) + 1)
        dx, dy = self.cell_size
        return TerrainSurface(self.values[np.ix_(r, c)], near_data[np.ix_(r, c)], self.xs[c], self.ys[r],
                              self.stride * factor, (dx * factor, dy * factor), self.cells[np.ix_(r, c)])

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear elevation (m) at points; clamped to the edge outside the grid."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        rows, cols = self.values.shape
        fc = (x - self.xs[0]) / (self.xs[1] - self.xs[0]) if cols > 1 else np.zeros_like(x)
        fr = (y - self.ys[0]) / (self.ys[1] - self.ys[0]) if rows > 1 else np.zeros_like(y)
        fc = np.clip(fc, 0, cols - 1)
        fr = np.clip(fr, 0, rows - 1)
        c0 = np.minimum(np.floor(fc).astype(np.int64), max(cols - 2, 0))
        r0 = np.minimum(np.floor(fr).astype(np.int64), max(rows - 2, 0))
        c1 = np.minimum(c0 + 1, cols - 1)
        r1 = np.minimum(r0 + 1, rows - 1)
        tc, tr = fc - c0, fr - r0
        v = self.values
        top = v[r0, c0] * (1 - tc) + v[r0, c1] * tc
        bottom = v[r1, c0] * (1 - tc) + v[r1, c1] * tc
        return top * (1 - tr) + bottom * tr


def terrain_mesh(dem: Grid | TerrainSurface, *, max_cells: int = 1_000_000, z_scale: float = 1.0) -> pv.PolyData:
    """The terrain as one quad mesh over the valid cells of a decimated DEM.

    Points sit at sampled cell centres (stride chosen so there are at most
    ``max_cells`` quads); quads touching a NaN cell are dropped and so are
    unused points.  Point data: ``elevation`` (m, unscaled), ``dem_cell``
    (flat index into the full DEM, to colour by aligned grids such as land
    cover), ``hillshade`` (0..1, with ``z_scale`` as the relief factor).
    """
    surface = dem if isinstance(dem, TerrainSurface) else TerrainSurface.from_grid(dem, max_cells)
    values, valid = surface.values, surface.valid
    rows, cols = values.shape
    if rows < 2 or cols < 2:
        mesh = pv.PolyData()
        mesh.point_data["elevation"] = np.zeros(0, dtype=np.float32)
        return mesh
    ids = np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)
    corners = np.stack([ids[1:, :-1], ids[1:, 1:], ids[:-1, 1:], ids[:-1, :-1]], axis=-1).reshape(-1, 4)
    vflat = valid.ravel()
    corners = corners[vflat[corners].all(axis=1)]
    used = np.zeros(rows * cols, dtype=bool)
    used[corners.ravel()] = True
    new_id = np.cumsum(used) - 1
    xx, yy = np.meshgrid(surface.xs, surface.ys)
    shade = hillshade(np.where(valid, values, np.nan), surface.cell_size, z_factor=z_scale)
    points = np.column_stack([xx.ravel()[used], yy.ravel()[used], values.ravel()[used].astype(float) * z_scale])
    faces = np.column_stack([np.full(len(corners), 4, dtype=np.int64), new_id[corners]]).ravel()
    mesh = pv.PolyData(points, faces=faces)
    mesh.point_data["elevation"] = values.ravel()[used].astype(np.float32)
    mesh.point_data["dem_cell"] = surface.cells.ravel()[used]
    mesh.point_data["hillshade"] = shade.ravel()[used]
    return mesh


#: Samples of the drawn terrain per side of one quad of its level of detail: 16 times fewer
#: quads, which a software renderer draws in a few milliseconds even for a big DEM.
TERRAIN_LOD_FACTOR = 4


def _coarse_index(n: int, factor: int) -> np.ndarray:
    """Every ``factor``-th index of ``range(n)`` and always the last one."""
    return np.unique(np.r_[np.arange(0, n, max(int(factor), 1)), n - 1])


def terrain_lod(surface: TerrainSurface, full: pv.PolyData, *, factor: int = TERRAIN_LOD_FACTOR,
                z_scale: float = 1.0) -> pv.PolyData:
    """A cheap stand-in for the terrain mesh ``full`` (of ``surface``) to draw while the camera moves.

    The same terrain sampled ``factor`` times coarser in each direction (see
    :meth:`TerrainSurface.coarser`): the same extent within a coarse cell,
    and points at the same heights as the full mesh's points there, scaled
    by ``z_scale`` as it is.  Point data ``full_point`` is the full mesh's
    point at the same DEM cell (the nearest one where the full mesh has none
    there), so colours computed for the full mesh carry over unchanged.
    """
    lod = terrain_mesh(surface.coarser(factor), z_scale=z_scale)
    if lod.n_points == 0 or full.n_points == 0:
        lod.point_data["full_point"] = np.zeros(lod.n_points, dtype=np.int64)
        return lod
    nearest = _nearest_full_point(surface, np.asarray(full.point_data["dem_cell"]))
    samples = np.searchsorted(surface.cells.ravel(), np.asarray(lod.point_data["dem_cell"]))
    lod.point_data["full_point"] = nearest.ravel()[samples]
    return lod


def _nearest_full_point(surface: TerrainSurface, full_cells: np.ndarray) -> np.ndarray:
    """For every sample of ``surface``, the point of its terrain mesh (whose sorted
    ``dem_cell`` array is ``full_cells``) nearest to it: its own where it has one."""
    from scipy.ndimage import distance_transform_edt

    grid = surface.cells
    at = np.minimum(np.searchsorted(full_cells, grid), len(full_cells) - 1)
    in_mesh = full_cells[at] == grid
    if in_mesh.all():
        return at
    rows, cols = distance_transform_edt(~in_mesh, return_distances=False, return_indices=True)
    return at[rows, cols]


def ground_plane(extent: tuple[float, float, float, float], z: float = 0.0, margin: float = 0.05) -> pv.PolyData:
    """A flat rectangle over ``extent`` (xmin, ymin, xmax, ymax; m) grown by ``margin``
    (a fraction of the larger side), for cities without a terrain model."""
    xmin, ymin, xmax, ymax = extent
    pad = margin * max(xmax - xmin, ymax - ymin)
    return pv.PolyData(np.array([[xmin - pad, ymin - pad, z], [xmax + pad, ymin - pad, z],
                                 [xmax + pad, ymax + pad, z], [xmin - pad, ymax + pad, z]]),
                       faces=np.array([4, 0, 1, 2, 3]))
