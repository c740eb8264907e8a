"""3D models from files (OBJ, PLY, STL, glTF/GLB, VTK/VTP...) as one triangulated
PolyData, and their placement in the project CRS.

Points are kept in float64: project coordinates (UTM northings are millions of
metres) would lose decimetres in float32.  glTF is Y-up by its specification,
so its models are turned Z-up; other formats are read as they are (Z-up).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Literal

import numpy as np
import pyvista as pv

from twin.errors import input_error

#: Suffixes read through VTK's own readers (``pv.read``).
VTK_MESH_SUFFIXES = (".obj", ".ply", ".stl", ".gltf", ".glb", ".vtp", ".vtk", ".vtu")
#: Suffixes read through meshio (formats VTK has no reader for).
MESHIO_MESH_SUFFIXES = (".off",)
MESH_SUFFIXES = VTK_MESH_SUFFIXES + MESHIO_MESH_SUFFIXES
_EXPECTED = "a 3D model (OBJ, PLY, STL, glTF/GLB, VTP/VTK, OFF)"
_NOTHING_READ = f"no geometry could be read: the file is empty, damaged or not {_EXPECTED}"

#: A model whose centre lies farther than this from 0 (metres) is taken as already in the project CRS.
GEOREFERENCED_MIN_M = 100_000.0


def _leaves(block: pv.MultiBlock) -> list[pv.DataSet]:
    out: list[pv.DataSet] = []
    for item in block:
        if isinstance(item, pv.MultiBlock):
            out.extend(_leaves(item))
        elif item is not None and item.n_points:
            out.append(item)
    return out


def _as_polydata(data: pv.DataSet) -> pv.PolyData:
    if isinstance(data, pv.PolyData):
        return data
    try:
        return data.extract_surface(algorithm=None, pass_pointid=False, pass_cellid=False)
    except TypeError:  # pyvista before the ``algorithm`` keyword
        return data.extract_surface(pass_pointid=False, pass_cellid=False)


def _merge(parts: list[pv.PolyData]) -> pv.PolyData:
    """One PolyData from several, ``feature`` = index of the part each cell came from."""
    for i, part in enumerate(parts):
        part.cell_data["feature"] = np.full(part.n_cells, i, dtype=np.int32)
    if len(parts) == 1:
        return parts[0]
    merged = pv.merge(parts, merge_points=False)
    return _as_polydata(merged)


def _read_vtk(path: Path) -> pv.PolyData:
    """``pv.read`` with VTK's error printing silenced; a reader failure becomes an InputError."""
    with warnings.catch_warnings(record=True) as caught, _vtk_errors_silenced():
        warnings.simplefilter("always")
        try:
            data = pv.read(path)
        except Exception as exc:  # VTK readers raise a variety of types on bad files
            raise input_error(path, "", f"not a readable 3D model ({_short(exc)}); expected {_EXPECTED}") from None
    failed = [w for w in caught if "error while reading" in str(w.message)]
    if failed or data is None:
        reason = _short(Exception(str(failed[0].message))) if failed else "the reader returned nothing"
        raise input_error(path, "", f"not a readable 3D model ({reason}); expected {_EXPECTED}")
    if isinstance(data, pv.MultiBlock):
        parts = [_as_polydata(leaf) for leaf in _leaves(data)]
        if not parts:
            raise input_error(path, "", _NOTHING_READ)
        return _merge([p.copy() for p in parts])
    mesh = _as_polydata(data)
    if "GroupIds" in mesh.cell_data and "feature" not in mesh.cell_data:
        mesh.cell_data["feature"] = np.asarray(mesh.cell_data["GroupIds"]).astype(np.int32)
    return mesh


@contextmanager
def _vtk_errors_silenced() -> Iterator[None]:
    """Keep VTK's error window and logger quiet; failures are reported as InputError instead."""
    from vtkmodules.vtkCommonCore import vtkObject

    previous = vtkObject.GetGlobalWarningDisplay()
    vtkObject.GlobalWarningDisplayOff()
    verbosity = getattr(pv, "vtk_verbosity", None)
    try:
        with verbosity("off") if verbosity is not None else nullcontext():
            yield
    finally:
        vtkObject.SetGlobalWarningDisplay(previous)


def _read_meshio(path: Path) -> pv.PolyData:
    import meshio

    try:
        data = meshio.read(path)
    except Exception as exc:  # meshio raises ReadError, ValueError, IndexError... on bad files
        raise input_error(path, "", f"not a readable 3D model ({_short(exc)}); expected {_EXPECTED}") from None
    return _as_polydata(pv.wrap(data))


def _y_up_to_z_up(mesh: pv.PolyData) -> None:
    """Turn a Y-up model (glTF) Z-up in place: (x, y, z) -> (x, -z, y), a rotation about x."""
    p = np.asarray(mesh.points, dtype=np.float64)
    mesh.points = np.column_stack([p[:, 0], -p[:, 2], p[:, 1]])
    for data in (mesh.point_data, mesh.cell_data):
        for name in list(data.keys()):
            values = np.asarray(data[name])
            if name.lower() in ("normals", "normal") and values.ndim == 2 and values.shape[1] == 3:
                data[name] = np.column_stack([values[:, 0], -values[:, 2], values[:, 1]])


def read_mesh(path: str | Path, *, up_axis: Literal["z", "y"] | None = None) -> pv.PolyData:
    """A 3D model file as one triangulated PolyData (float64 points, Z up, metres).

    ``up_axis`` is the file's vertical axis; None: "y" for glTF/GLB (as its
    specification says), "z" for the others.  Cell data ``feature`` (int32)
    numbers the model's parts (glTF meshes/nodes, OBJ groups), 0 when there is one.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise input_error(path, "", "file not found; check the path")
    if suffix not in MESH_SUFFIXES:
        raise input_error(path, "", f"unknown 3D model format {suffix!r}; expected {_EXPECTED}")
    mesh = _read_meshio(path) if suffix in MESHIO_MESH_SUFFIXES else _read_vtk(path)
    if mesh.n_points == 0 or mesh.n_cells == 0:
        raise input_error(path, "", _NOTHING_READ)
    mesh = mesh.triangulate()
    if not isinstance(mesh, pv.PolyData):
        mesh = _as_polydata(mesh)
    mesh.points = np.asarray(mesh.points, dtype=np.float64)
    if not np.isfinite(mesh.points).all():
        raise input_error(path, "vertices", "the model has coordinates that are not finite numbers (NaN or infinity)")
    if (up_axis or ("y" if suffix in (".gltf", ".glb") else "z")) == "y":
        _y_up_to_z_up(mesh)
    if "feature" not in mesh.cell_data:
        mesh.cell_data["feature"] = np.zeros(mesh.n_cells, dtype=np.int32)
    if mesh.GetNumberOfPolys() == 0:
        raise input_error(path, "", "the model has no surfaces (only points or lines); a 3D model needs faces")
    return mesh


def plan_placement(points: np.ndarray, origin: tuple[float, ...] | None = None,
                   crs_extent: tuple[float, float, float, float] | None = None) -> dict:
    """Where a model goes in the project CRS (see :func:`place_mesh`), from its (n, 3) points, metres."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        raise ValueError("an empty model cannot be placed")
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    model_bounds = [float(v) for v in (lo[0], lo[1], lo[2], hi[0], hi[1], hi[2])]
    meets_extent = crs_extent is not None and bool(
        lo[0] <= crs_extent[2] and hi[0] >= crs_extent[0] and lo[1] <= crs_extent[3] and hi[1] >= crs_extent[1])
    far = max(abs(centre[0]), abs(centre[1])) >= GEOREFERENCED_MIN_M
    if meets_extent or far:
        return {"mode": "georeferenced", "offset": [0.0, 0.0, 0.0], "origin": None, "model_bounds": model_bounds,
                "inside_extent": meets_extent if crs_extent is not None else None}
    if origin is None:
        if crs_extent is None:
            raise ValueError("a model in local coordinates needs an origin or the map extent to be placed")
        origin = ((crs_extent[0] + crs_extent[2]) / 2, (crs_extent[1] + crs_extent[3]) / 2, 0.0)
    ox, oy = float(origin[0]), float(origin[1])
    oz = float(origin[2]) if len(origin) > 2 else 0.0
    offset = [ox - float(centre[0]), oy - float(centre[1]), oz]
    return {"mode": "local", "offset": offset, "origin": [ox, oy, oz], "model_bounds": model_bounds}


def place_mesh(mesh: pv.PolyData, origin: tuple[float, ...] | None = None,
               crs_extent: tuple[float, float, float, float] | None = None) -> tuple[pv.PolyData, dict]:
    """Put a model in the project CRS, returning a moved copy and what was done.

    A model already in the project CRS (its box meets ``crs_extent``, or its
    centre is over 100 km from 0, too far for local coordinates) is kept where
    it is, whatever ``origin`` says.  A local model has the centre of its
    footprint moved to ``origin`` (x, y[, z] in the project CRS, metres;
    default: the centre of ``crs_extent``, z 0) and its z raised by origin's z,
    so z = 0 in the model lands at origin's z.  The placement dict holds
    ``mode`` ("georeferenced" or "local"), ``offset`` (dx, dy, dz added, m),
    ``origin`` and the model's own ``model_bounds`` (xmin, ymin, zmin, xmax, ymax, zmax).
    """
    points = np.asarray(mesh.points, dtype=np.float64)
    placement = plan_placement(points, origin, crs_extent)
    placed = mesh.copy()
    placed.points = points + np.asarray(placement["offset"])
    return placed, placement


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def faces_to_mesh(vertices: np.ndarray, ring_index: np.ndarray, ring_offsets: np.ndarray,
                  face_offsets: np.ndarray, cell_data: dict[str, np.ndarray] | None = None) -> pv.PolyData:
    """Triangulated PolyData from planar polygon faces with holes (CityJSON surfaces, say).

    Faces are given flat: ``ring_index`` the vertex indices of every ring in
    turn, ``ring_offsets`` (n_rings + 1) where each ring starts, ``face_offsets``
    (n_faces + 1) where each face's rings start, the outer ring first.
    ``cell_data`` holds one value per face and is carried to its triangles.
    Faces without holes are triangulated by VTK; faces with holes in their
    own plane with shapely (constrained Delaunay).  Faces that cannot be
    triangulated (self-intersecting, not planar enough) are counted in
    ``field_data["skipped_faces"]``.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    n_rings_per_face = np.diff(face_offsets)
    cell_data = {k: np.asarray(v) for k, v in (cell_data or {}).items()}
    simple = np.flatnonzero(n_rings_per_face == 1)
    holed = np.flatnonzero(n_rings_per_face > 1)
    parts: list[pv.PolyData] = []

    if len(simple):
        rings = face_offsets[simple]
        counts = ring_offsets[rings + 1] - ring_offsets[rings]
        take = np.concatenate([np.arange(ring_offsets[r], ring_offsets[r + 1]) for r in rings])
        cells = np.insert(ring_index[take], np.concatenate([[0], np.cumsum(counts[:-1])]), counts)
        mesh = pv.PolyData(vertices, faces=cells)
        for key, values in cell_data.items():
            mesh.cell_data[key] = values[simple]
        parts.append(mesh.triangulate())

    skipped = 0
    if len(holed):
        tri_points, tri_face, skipped = _triangulate_holed(vertices, ring_index, ring_offsets, face_offsets, holed)
        if len(tri_face):
            n = len(tri_face)
            cells = np.column_stack([np.full(n, 3), np.arange(3 * n).reshape(-1, 3)]).ravel()
            mesh = pv.PolyData(tri_points.reshape(-1, 3), faces=cells)
            for key, values in cell_data.items():
                mesh.cell_data[key] = values[tri_face]
            parts.append(mesh)

    if not parts:
        mesh = pv.PolyData()
        for key, values in cell_data.items():
            mesh.cell_data[key] = values[:0]
    elif len(parts) == 1:
        mesh = parts[0]
    else:
        mesh = _as_polydata(pv.merge(parts, merge_points=False))
    mesh.points = np.asarray(mesh.points, dtype=np.float64)
    mesh.field_data["skipped_faces"] = np.array([skipped])
    return mesh


def _newell_normals(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Unnormalised normal of each ring (Newell's method), robust for concave and slightly warped rings."""
    starts = offsets[:-1]
    nxt = np.arange(len(points)) + 1
    ends = offsets[1:]
    nxt[ends - 1] = starts
    a, b = points, points[nxt]
    # Centre each ring first so that large project coordinates do not swamp the sum.
    centre = np.add.reduceat(points, starts, axis=0) / np.diff(offsets)[:, None]
    ring_of = np.repeat(np.arange(len(starts)), np.diff(offsets))
    a = a - centre[ring_of]
    b = b - centre[ring_of]
    terms = np.column_stack([(a[:, 1] - b[:, 1]) * (a[:, 2] + b[:, 2]),
                             (a[:, 2] - b[:, 2]) * (a[:, 0] + b[:, 0]),
                             (a[:, 0] - b[:, 0]) * (a[:, 1] + b[:, 1])])
    return np.add.reduceat(terms, starts, axis=0)


def _triangulate_holed(vertices: np.ndarray, ring_index: np.ndarray, ring_offsets: np.ndarray,
                       face_offsets: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Triangles (T, 3, 3) of faces with holes, the face of each, and how many faces failed."""
    import shapely
    from shapely import GeometryType

    rings = np.concatenate([np.arange(face_offsets[f], face_offsets[f + 1]) for f in faces])
    per_face = face_offsets[faces + 1] - face_offsets[faces]
    face_of_ring = np.repeat(faces, per_face)
    lengths = ring_offsets[rings + 1] - ring_offsets[rings]
    ring_pts = vertices[ring_index[np.concatenate([np.arange(ring_offsets[r], ring_offsets[r + 1]) for r in rings])]]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    outer = np.concatenate([[0], np.cumsum(per_face)[:-1]])
    normal = _newell_normals(ring_pts, offsets)[outer]
    axis = np.abs(normal).argmax(axis=1)
    keep_axes = np.array([[1, 2], [2, 0], [0, 1]])[axis]
    anchor = ring_pts[offsets[outer]]

    ring_axes = np.repeat(keep_axes, per_face, axis=0)
    pt_axes = np.repeat(ring_axes, lengths, axis=0)
    uv = np.take_along_axis(ring_pts, pt_axes, axis=1)
    closed = np.insert(uv, offsets[1:], uv[offsets[:-1]], axis=0)
    closed_offsets = np.concatenate([[0], np.cumsum(lengths + 1)])
    polys = shapely.from_ragged_array(GeometryType.POLYGON, closed, offsets=(closed_offsets,
                                                                            np.concatenate([[0], np.cumsum(per_face)])))
    polys = shapely.make_valid(polys)
    try:
        tris = shapely.constrained_delaunay_triangles(polys)
        failed = np.zeros(len(polys), dtype=bool)
    except shapely.errors.GEOSException:
        tris = np.empty(len(polys), dtype=object)
        failed = np.zeros(len(polys), dtype=bool)
        for i, poly in enumerate(polys):
            try:
                tris[i] = shapely.constrained_delaunay_triangles(poly)
            except shapely.errors.GEOSException:
                failed[i] = True
                tris[i] = shapely.GeometryCollection()
    parts, owner = shapely.get_parts(tris, return_index=True)
    is_triangle = shapely.get_type_id(parts) == 3
    parts, owner = parts[is_triangle], owner[is_triangle]
    if len(parts) == 0:
        return np.zeros((0, 3, 3)), np.zeros(0, dtype=np.int64), int(failed.sum())
    uv_tri = shapely.get_coordinates(parts).reshape(-1, 4, 2)[:, :3]
    # Back to 3D: the dropped coordinate from the plane of the face through its first vertex.
    rows = np.arange(len(parts))
    n, axes, drop = normal[owner], keep_axes[owner], axis[owner]
    pts = np.zeros((len(parts), 3, 3))
    for j in range(2):
        pts[rows, :, axes[:, j]] = uv_tri[:, :, j]
    known = sum(n[rows, axes[:, j]][:, None] * uv_tri[:, :, j] for j in range(2))
    plane = (n * anchor[owner]).sum(axis=1)
    pts[rows, :, drop] = (plane[:, None] - known) / n[rows, drop][:, None]
    # Keep the face's orientation (outward normal) on its triangles.
    flip = (np.cross(pts[:, 1] - pts[:, 0], pts[:, 2] - pts[:, 0]) * n).sum(axis=1) < 0
    pts[flip, 1], pts[flip, 2] = pts[flip, 2].copy(), pts[flip, 1].copy()
    return pts, faces[owner], int(failed.sum())
