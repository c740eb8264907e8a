"""CityJSON 1.0 / 1.1 / 2.0 city models: surfaces, objects, footprints and heights.

A file is checked as a whole before anything is built (type, version,
transform, vertices, every geometry's boundaries and vertex indices) and one
:class:`~twin.errors.InputError` lists every problem with its JSON path, e.g.
``CityObjects.b12.geometry[0].boundaries``.

Surfaces are kept as flat index arrays (VTK-style): ``ring_index`` holds the
vertex indices of every ring one after another, ``ring_offsets`` where each
ring starts, ``face_offsets`` where each face's rings start (the outer ring
first, then its holes).  Parts (BuildingPart, BuildingInstallation...) are
merged into their top-level object; semantics are read only for
GroundSurface (footprint, ground height) and RoofSurface (roof height).
Coordinates are in the file's CRS, metres; heights in metres.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely import GeometryType

from twin.errors import InputError, Problem, input_error

SUPPORTED_VERSIONS = ("1.0", "1.1", "2.0")
#: Depth of ``boundaries`` (levels of lists down to vertex indices) by geometry type.
SURFACE_DEPTH = {"MultiSurface": 3, "CompositeSurface": 3, "Solid": 4, "MultiSolid": 5, "CompositeSolid": 5}
#: Semantic surface codes kept per face (cell data ``surface`` of the mesh).
SURFACE_TYPES = ("", "GroundSurface", "RoofSurface", "WallSurface", "other")
_GROUND, _ROOF = 1, 2
_MAX_PROBLEMS_PER_GEOMETRY = 1


@dataclass
class CityJsonModel:
    """A CityJSON file's surfaces (one LOD per object) and objects, in the file's CRS.

    ``objects`` has one row per top-level object with surfaces: ``id``,
    ``type``, ``lod`` (the LODs used, comma-separated), ``attributes`` (dict),
    ``z_min``/``z_max`` (m), ``ground_m`` (lowest GroundSurface point, else
    ``z_min``), ``roof_m`` (highest RoofSurface point, else ``z_max``) and
    ``height_m`` = roof_m - ground_m.
    """

    path: Path
    version: str
    reference_system: str
    crs: CRS | None
    vertices: np.ndarray
    ring_index: np.ndarray
    ring_offsets: np.ndarray
    face_offsets: np.ndarray
    face_object: np.ndarray
    face_surface: np.ndarray
    objects: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def n_faces(self) -> int:
        return len(self.face_offsets) - 1

    def face_rings(self, face: int) -> list[np.ndarray]:
        """Vertex indices of one face's rings, the outer ring first."""
        r0, r1 = self.face_offsets[face], self.face_offsets[face + 1]
        return [self.ring_index[self.ring_offsets[r]:self.ring_offsets[r + 1]] for r in range(r0, r1)]

    def to_crs(self, crs: CRS) -> CityJsonModel:
        """The model with x, y reprojected to ``crs`` (z is kept: heights stay in the file's vertical datum)."""
        if self.crs is None:
            raise input_error(self.path, "metadata.referenceSystem", "the file names no CRS, so it cannot be "
                              "reprojected; add metadata.referenceSystem (e.g. EPSG:7415)")
        if self.crs == crs:
            return self
        transformer = Transformer.from_crs(self.crs, crs, always_xy=True)
        x, y = transformer.transform(self.vertices[:, 0], self.vertices[:, 1])
        vertices = np.column_stack([x, y, self.vertices[:, 2]])
        if not np.isfinite(vertices).all():
            raise input_error(self.path, "vertices", f"some vertices cannot be reprojected from "
                              f"{self.reference_system} to {crs.name}; is referenceSystem right?")
        return replace(self, vertices=vertices, crs=crs)

    def translated(self, offset: tuple[float, float, float]) -> CityJsonModel:
        """The model moved by (dx, dy, dz) metres (to place a model in local coordinates)."""
        return replace(self, vertices=self.vertices + np.asarray(offset, dtype=np.float64))

    def _polygons_2d(self, faces: np.ndarray) -> np.ndarray:
        """The faces projected on the xy plane as shapely polygons (holes kept), repaired with buffer(0)."""
        if len(faces) == 0:
            return np.empty(0, dtype=object)
        rings = np.concatenate([np.arange(self.face_offsets[f], self.face_offsets[f + 1]) for f in faces])
        starts, ends = self.ring_offsets[rings], self.ring_offsets[rings + 1]
        lengths = ends - starts
        idx = np.concatenate([np.append(self.ring_index[s:e], self.ring_index[s]) for s, e in zip(starts, ends)])
        coords = self.vertices[idx, :2]
        ring_offsets = np.concatenate([[0], np.cumsum(lengths + 1)])
        per_face = self.face_offsets[faces + 1] - self.face_offsets[faces]
        geom_offsets = np.concatenate([[0], np.cumsum(per_face)])
        polys = shapely.from_ragged_array(GeometryType.POLYGON, coords, offsets=(ring_offsets, geom_offsets))
        return shapely.buffer(polys, 0.0)

    def footprints(self) -> np.ndarray:
        """One footprint per row of ``objects`` (shapely, file CRS): the union of the xy projections of
        its GroundSurfaces, or of all its surfaces when it has none.  Empty when nothing has an area."""
        n = len(self.objects)
        out = np.empty(n, dtype=object)
        ground = self.face_surface == _GROUND
        has_ground = np.zeros(n, dtype=bool)
        has_ground[np.unique(self.face_object[ground])] = True
        use = ground | ~has_ground[self.face_object]
        faces = np.flatnonzero(use)
        polys = self._polygons_2d(faces)
        owner = self.face_object[faces]
        order = np.argsort(owner, kind="stable")
        bounds = np.searchsorted(owner[order], np.arange(n + 1))
        for i in range(n):
            parts = polys[order[bounds[i]:bounds[i + 1]]]
            parts = parts[~shapely.is_empty(parts)]
            out[i] = shapely.union_all(parts) if len(parts) else shapely.Polygon()
        return out

    def to_frame(self) -> gpd.GeoDataFrame:
        """Footprints with ``height_m``, ``height_source`` ("cityjson"), ``ground_m``, ``cityjson_id``,
        ``cityjson_type``, ``lod`` and the objects' attributes (nested values as JSON text)."""
        objects = self.objects
        data: dict[str, Any] = {
            "cityjson_id": objects["id"].to_numpy(dtype=object),
            "cityjson_type": objects["type"].to_numpy(dtype=object),
            "lod": objects["lod"].to_numpy(dtype=object),
            "height_m": objects["height_m"].to_numpy(dtype=float),
            "height_source": np.full(len(objects), "cityjson", dtype=object),
            "ground_m": objects["ground_m"].to_numpy(dtype=float),
        }
        keys: list[str] = []
        for attrs in objects["attributes"]:
            keys += [k for k in attrs if k not in keys]
        for key in keys:
            column = key if key not in data and key != "geometry" else f"attr_{key}"
            data[column] = pd.Series([_plain(attrs.get(key)) for attrs in objects["attributes"]], dtype=object)
        return gpd.GeoDataFrame(data, geometry=self.footprints(), crs=self.crs)


def _plain(value: Any) -> Any:
    """An attribute value fit for a table cell: nested lists and dicts become JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def parse_reference_system(text: str) -> CRS:
    """The horizontal CRS of a CityJSON ``referenceSystem``.

    Accepts OGC URLs (``https://www.opengis.net/def/crs/EPSG/0/7415``), URNs
    (``urn:ogc:def:crs:EPSG::28992``) and anything pyproj reads; a compound CRS
    (e.g. RD New + NAP height) gives its horizontal part.  Raises ValueError.
    """
    value = text.strip()
    match = re.search(r"(\d+)\s*$", value) if "epsg" in value.lower() else None
    try:
        crs = CRS.from_epsg(int(match.group(1))) if match else CRS.from_user_input(value)
    except CRSError:
        raise ValueError(f"unknown reference system {text!r}; use e.g. "
                         "\"https://www.opengis.net/def/crs/EPSG/0/7415\"") from None
    if crs.is_compound:
        crs = crs.sub_crs_list[0]
    elif len(crs.axis_info) == 3:
        crs = crs.to_2d()
    return crs


def _lod_key(lod: Any) -> str:
    """LOD as text: 1 -> "1", 2.2 -> "2.2" (CityJSON 1.0 writes numbers, 1.1+ strings)."""
    if isinstance(lod, (int, float)) and not isinstance(lod, bool):
        return f"{lod:g}"
    return str(lod).strip()


def _lod_rank(lod: str) -> float:
    try:
        return float(lod)
    except ValueError:
        return -1.0


@dataclass
class _Builder:
    """Collects rings, faces and problems while walking the CityObjects."""

    n_vertices: int
    source: str
    problems: list[Problem] = field(default_factory=list)
    ring_index: list[np.ndarray] = field(default_factory=list)
    face_rings: list[int] = field(default_factory=list)
    face_object: list[int] = field(default_factory=list)
    face_surface: list[int] = field(default_factory=list)
    degenerate: int = 0

    def walk(self, boundaries: Any, depth: int, values: Any, surfaces: list, owner: int, where: str) -> None:
        """Add every surface of one geometry (``depth`` levels of lists above the vertex indices)."""
        found: list[str] = []
        pending: list[tuple[list[np.ndarray], int]] = []
        self._walk(boundaries, depth, values, surfaces, "", found, pending)
        if found:
            self.problems += [Problem(self.source, where, msg) for msg in found[:_MAX_PROBLEMS_PER_GEOMETRY]]
            return
        for rings, code in pending:
            self.ring_index += rings
            self.face_rings.append(len(rings))
            self.face_object.append(owner)
            self.face_surface.append(code)

    def _walk(self, node: Any, depth: int, values: Any, surfaces: list, sub: str,
              found: list[str], pending: list) -> None:
        if found:
            return
        if not isinstance(node, list):
            found.append(f"{sub or 'boundaries'} must be a list (nesting of {depth} levels expected here)")
            return
        if depth == 3:
            for k, surface in enumerate(node):
                value = values[k] if isinstance(values, list) and k < len(values) else None
                self._surface(surface, value, surfaces, f"{sub}[{k}]", found, pending)
            return
        for k, child in enumerate(node):
            value = values[k] if isinstance(values, list) and k < len(values) else None
            self._walk(child, depth - 1, value, surfaces, f"{sub}[{k}]", found, pending)

    def _surface(self, surface: Any, value: Any, surfaces: list, sub: str, found: list[str], pending: list) -> None:
        if not isinstance(surface, list) or not surface or not all(isinstance(r, list) for r in surface):
            found.append(f"{sub} must be a surface: a list of rings, each a list of vertex indices")
            return
        rings: list[np.ndarray] = []
        for j, ring in enumerate(surface):
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in ring):
                found.append(f"{sub}[{j}] must hold vertex indices (integers)")
                return
            arr = np.asarray(ring, dtype=np.int64)
            bad = arr[(arr < 0) | (arr >= self.n_vertices)]
            if bad.size:
                found.append(f"vertex index {int(bad[0])} at {sub}[{j}] is out of range "
                             f"(the file has {self.n_vertices} vertices, indices 0..{self.n_vertices - 1})")
                return
            if len(arr) > 1 and arr[0] == arr[-1]:
                arr = arr[:-1]
            if len(np.unique(arr)) < 3:
                if j == 0:
                    self.degenerate += 1
                    return
                continue
            rings.append(arr)
        code = 0
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(surfaces):
            kind = surfaces[value].get("type", "") if isinstance(surfaces[value], dict) else ""
            code = SURFACE_TYPES.index(kind) if kind in SURFACE_TYPES else len(SURFACE_TYPES) - 1
        pending.append((rings, code))


def _load_json(path: Path) -> Any:
    if not path.exists():
        raise input_error(path, "", "file not found; check the path")
    try:
        with path.open("rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise input_error(path, "", f"not valid JSON ({exc}); expected a CityJSON file") from None


def _check_header(doc: dict, source: str, problems: list[Problem]) -> tuple[str, np.ndarray | None]:
    """Version, transform and vertices (scaled); problems are appended."""
    if doc.get("type") != "CityJSON":
        problems.append(Problem(source, "type", f"is {doc.get('type')!r}; a CityJSON file has \"type\": \"CityJSON\""))
    version = str(doc.get("version", ""))
    if not any(version == v or version.startswith(v + ".") for v in SUPPORTED_VERSIONS):
        problems.append(Problem(source, "version", f"unsupported version {doc.get('version')!r}; Twin reads "
                                                   f"CityJSON {', '.join(SUPPORTED_VERSIONS)}"))
    scale, translate = np.ones(3), np.zeros(3)
    transform = doc.get("transform")
    if transform is not None:
        if not isinstance(transform, dict):
            problems.append(Problem(source, "transform", "must be an object with scale and translate"))
        else:
            for key in ("scale", "translate"):
                value = transform.get(key)
                ok = isinstance(value, list) and len(value) == 3 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                if not ok:
                    what = "missing" if value is None else f"{value!r} is not three numbers"
                    problems.append(Problem(source, f"transform.{key}", f"{what}; give [x, y, z], e.g. "
                                            + ("[0.001, 0.001, 0.001]" if key == "scale" else "[0, 0, 0]")))
                elif key == "scale":
                    scale = np.asarray(value, dtype=np.float64)
                else:
                    translate = np.asarray(value, dtype=np.float64)
            if not (scale != 0).all():
                problems.append(Problem(source, "transform.scale", "must not be 0"))
    raw = doc.get("vertices")
    if raw is None:
        problems.append(Problem(source, "vertices", "missing; a CityJSON file lists its vertices as [x, y, z]"))
        return version, None
    try:
        vertices = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(Problem(source, "vertices", "must be a list of [x, y, z] number triples"))
        return version, None
    if vertices.size == 0:
        problems.append(Problem(source, "vertices", "the file has no vertices"))
        return version, None
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        problems.append(Problem(source, "vertices", "must be a list of [x, y, z] number triples"))
        return version, None
    if not np.isfinite(vertices).all():
        problems.append(Problem(source, "vertices", "holds values that are not finite numbers"))
    return version, vertices * scale + translate


def _root_of(oid: str, objects: dict) -> str:
    """The top-level object a part belongs to (parents followed, groups not entered)."""
    seen = {oid}
    while True:
        parents = objects.get(oid, {}).get("parents") if isinstance(objects.get(oid), dict) else None
        if not parents or not isinstance(parents, list):
            return oid
        parent = parents[0]
        record = objects.get(parent)
        if parent in seen or not isinstance(record, dict) or record.get("type") == "CityObjectGroup":
            return oid
        seen.add(parent)
        oid = parent


def read_cityjson(path: str | Path, *, lod: str | float | None = None) -> CityJsonModel:
    """Read a CityJSON file: the highest LOD of each object (or ``lod``, e.g. "1" or "2.2").

    Objects without that LOD are left out and counted in ``notes``.  Raises
    one InputError listing every problem found in the file.
    """
    path = Path(path)
    source = str(path)
    doc = _load_json(path)
    if not isinstance(doc, dict):
        raise input_error(path, "", "not a CityJSON file: the top level must be an object with \"type\": \"CityJSON\"")
    problems: list[Problem] = []
    version, vertices = _check_header(doc, source, problems)

    reference = ""
    crs = None
    metadata = doc.get("metadata")
    if isinstance(metadata, dict) and metadata.get("referenceSystem"):
        reference = str(metadata["referenceSystem"])
        try:
            crs = parse_reference_system(reference)
        except ValueError as exc:
            problems.append(Problem(source, "metadata.referenceSystem", str(exc)))

    city_objects = doc.get("CityObjects")
    if not isinstance(city_objects, dict):
        problems.append(Problem(source, "CityObjects", "missing or not an object of CityObjects by id"))
        city_objects = {}
    builder = _Builder(n_vertices=len(vertices) if vertices is not None else 0, source=source)
    wanted = _lod_key(lod) if lod is not None else None
    roots: dict[str, int] = {}
    root_ids: list[str] = []
    object_lods: dict[str, set[str]] = {}
    instances = 0
    without_lod = 0
    for oid, obj in city_objects.items():
        where = f"CityObjects.{oid}"
        if not isinstance(obj, dict):
            problems.append(Problem(source, where, "must be an object with a type"))
            continue
        if not isinstance(obj.get("type"), str):
            problems.append(Problem(source, f"{where}.type", "missing; e.g. \"Building\""))
        geometries = obj.get("geometry", [])
        if not isinstance(geometries, list):
            problems.append(Problem(source, f"{where}.geometry", "must be a list of geometries"))
            continue
        surfaces_here = [(g, geom) for g, geom in enumerate(geometries)
                         if isinstance(geom, dict) and geom.get("type") in SURFACE_DEPTH]
        for g, geom in enumerate(geometries):
            if not isinstance(geom, dict) or "type" not in geom:
                problems.append(Problem(source, f"{where}.geometry[{g}]", "must be an object with a type"))
            elif geom["type"] == "GeometryInstance":
                instances += 1
            elif geom["type"] in SURFACE_DEPTH and "lod" not in geom:
                problems.append(Problem(source, f"{where}.geometry[{g}].lod", "missing; e.g. \"2.2\""))
        if not surfaces_here:
            continue
        lods = [_lod_key(geom.get("lod", "")) for _, geom in surfaces_here]
        choice = wanted if wanted is not None else max(lods, key=_lod_rank)
        chosen = [(g, geom) for (g, geom), key in zip(surfaces_here, lods) if key == choice]
        if not chosen:
            without_lod += 1
            continue
        root = _root_of(oid, city_objects)
        if root not in roots:
            roots[root] = len(root_ids)
            root_ids.append(root)
        object_lods.setdefault(root, set()).add(choice)
        for g, geom in chosen:
            semantics = geom.get("semantics") if isinstance(geom.get("semantics"), dict) else {}
            surfaces = semantics.get("surfaces") if isinstance(semantics.get("surfaces"), list) else []
            builder.walk(geom.get("boundaries"), SURFACE_DEPTH[geom["type"]], semantics.get("values"),
                         surfaces, roots[root], f"{where}.geometry[{g}].boundaries")
    problems += builder.problems
    if not problems and not builder.face_rings:
        problems.append(Problem(source, "CityObjects", "no object has surfaces (MultiSurface, CompositeSurface, "
                                + "Solid, MultiSolid or CompositeSolid)" + (f" at LOD {wanted}" if wanted else "")))
    if problems:
        raise InputError(problems)
    assert vertices is not None

    ring_lengths = np.array([len(r) for r in builder.ring_index], dtype=np.int64)
    ring_offsets = np.concatenate([[0], np.cumsum(ring_lengths)]).astype(np.int64)
    face_offsets = np.concatenate([[0], np.cumsum(builder.face_rings)]).astype(np.int64)
    face_object = np.asarray(builder.face_object, dtype=np.int64)
    # Objects whose every surface was degenerate have no faces left: renumber the others.
    has_faces = np.bincount(face_object, minlength=len(root_ids)) > 0
    root_ids = [oid for oid, keep in zip(root_ids, has_faces) if keep]
    face_object = (np.cumsum(has_faces) - 1)[face_object]
    face_surface = np.asarray(builder.face_surface, dtype=np.int8)
    ring_index = np.concatenate(builder.ring_index).astype(np.int64)
    objects = _objects_table(root_ids, city_objects, object_lods, vertices, ring_index, ring_offsets,
                             face_offsets, face_object, face_surface)
    notes = []
    if instances:
        notes.append(f"{instances} GeometryInstance (template) geometries are not read")
    if without_lod:
        notes.append(f"{without_lod} objects have no LOD {wanted} geometry and are left out")
    if builder.degenerate:
        notes.append(f"{builder.degenerate} surfaces with fewer than 3 distinct vertices are left out")
    return CityJsonModel(path=path, version=version, reference_system=reference, crs=crs, vertices=vertices,
                         ring_index=ring_index, ring_offsets=ring_offsets, face_offsets=face_offsets,
                         face_object=face_object, face_surface=face_surface, objects=objects, notes=notes)


def _objects_table(root_ids: list[str], city_objects: dict, object_lods: dict[str, set[str]],
                   vertices: np.ndarray, ring_index: np.ndarray, ring_offsets: np.ndarray,
                   face_offsets: np.ndarray, face_object: np.ndarray, face_surface: np.ndarray) -> pd.DataFrame:
    """One row per top-level object: z range, ground and roof heights (m)."""
    n = len(root_ids)
    z = vertices[ring_index, 2]
    ring_of_vertex = np.repeat(np.arange(len(ring_offsets) - 1), np.diff(ring_offsets))
    face_of_ring = np.repeat(np.arange(len(face_offsets) - 1), np.diff(face_offsets))
    face_of_vertex = face_of_ring[ring_of_vertex]
    owner = face_object[face_of_vertex]
    surface = face_surface[face_of_vertex]

    def reduce(mask: np.ndarray, fn: np.ufunc, fill: float) -> np.ndarray:
        out = np.full(n, fill)
        fn.at(out, owner[mask], z[mask])
        return out

    z_min = reduce(np.ones(len(z), dtype=bool), np.minimum, np.inf)
    z_max = reduce(np.ones(len(z), dtype=bool), np.maximum, -np.inf)
    ground = reduce(surface == _GROUND, np.minimum, np.inf)
    roof = reduce(surface == _ROOF, np.maximum, -np.inf)
    ground = np.where(np.isfinite(ground), ground, z_min)
    roof = np.where(np.isfinite(roof), roof, z_max)
    attrs = [city_objects[oid].get("attributes") if isinstance(city_objects[oid].get("attributes"), dict) else {}
             for oid in root_ids]
    return pd.DataFrame({
        "id": pd.Series(root_ids, dtype=object),
        "type": pd.Series([city_objects[oid].get("type", "") for oid in root_ids], dtype=object),
        "lod": pd.Series([",".join(sorted(object_lods[oid], key=_lod_rank)) for oid in root_ids], dtype=object),
        "attributes": pd.Series(attrs, dtype=object),
        "z_min": z_min, "z_max": z_max, "ground_m": ground, "roof_m": roof, "height_m": roof - ground,
    })


def is_cityjson(path: str | Path, head_bytes: int = 65536) -> bool:
    """Whether a .json file is CityJSON (``"type": "CityJSON"`` or ``"CityObjects"`` near its start),
    without parsing it all."""
    path = Path(path)
    if path.name.lower().endswith(".city.json"):
        return True
    try:
        with path.open("rb") as f:
            head = f.read(head_bytes).decode("utf-8", errors="ignore")
    except OSError:
        return False
    return re.search(r'"type"\s*:\s*"CityJSON"', head) is not None or '"CityObjects"' in head
