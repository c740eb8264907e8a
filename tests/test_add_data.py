"""File > Add layer: vector, raster, OSM, 3D models and CityJSON added to a one map (real sample data)."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import pyvista as pv
import shapely
from pyproj import CRS, Transformer
from shapely import affinity

from twin.errors import InputError
from twin.geo.add_data import ADDED_GROUP, SUPPORTED_SUFFIXES, add_layer_from_file, file_kind
from twin.geo.cityjson import parse_reference_system, read_cityjson
from twin.geo.crs import crs_label
from twin.geo.layers import LayerTree
from twin.geo.onemap import OneMap, load_one_map
from twin.geo.raster import Grid
from twin.scene.meshes import extrude_polygons
from twin.scene.mesh_io import faces_to_mesh, place_mesh, read_mesh

UTM32N = CRS.from_epsg(32632)
LAMBERT93 = CRS.from_epsg(2154)


# ----------------------------------------------------------------------------- fixtures


def _source(folder: Path) -> tuple:
    one_map = load_one_map(folder)
    frames = {k: v for k, v in one_map.data.items() if isinstance(v, gpd.GeoDataFrame)}
    return one_map.manifest, one_map.crs, frames


@pytest.fixture(scope="module")
def monaco_source(gis_data: Path) -> tuple:
    return _source(gis_data / "monaco")


@pytest.fixture(scope="module")
def carlisle_source(gis_data: Path) -> tuple:
    return _source(gis_data / "carlisle")


@pytest.fixture
def monaco(monaco_source: tuple) -> OneMap:
    """A fresh Monaco one map (vector layers shared with the module's first read, never modified)."""
    manifest, crs, frames = monaco_source
    return load_one_map(manifest, vector_data=frames, crs=crs)


@pytest.fixture
def carlisle(carlisle_source: tuple) -> OneMap:
    manifest, crs, frames = carlisle_source
    return load_one_map(manifest, vector_data=frames, crs=crs)


def _state(one_map: OneMap) -> tuple:
    return one_map.tree.to_dict(), sorted(one_map.data), sorted(one_map.reports)


def _coords_by_id(frame: gpd.GeoDataFrame) -> np.ndarray:
    ordered = frame.sort_values("osm_id")
    return shapely.get_coordinates(ordered.geometry.values)


# ----------------------------------------------------------------------------- vector


def test_supported_suffixes_cover_every_family() -> None:
    for suffix in (".gpkg", ".shp", ".zip", ".geojson", ".fgb", ".kml", ".tif", ".osm.pbf", ".obj", ".ply",
                   ".stl", ".glb", ".gltf", ".vtp", ".city.json"):
        assert suffix in SUPPORTED_SUFFIXES


def test_geopackage_from_another_city_is_added_and_reported_outside(monaco: OneMap, gis_data: Path) -> None:
    seen = []
    monaco.tree.inserted.connect(lambda item, group, index: seen.append((item.name, item.name in monaco.data)))
    layers = add_layer_from_file(monaco, gis_data / "carlisle" / "schools.gpkg")
    assert ("schools", True) in seen  # views find the data when the tree tells them
    assert [layer.name for layer in layers] == ["schools"]
    layer = layers[0]
    frame = monaco.data["schools"]
    assert layer.data is frame and len(frame) > 0
    assert frame.crs == monaco.crs and layer.crs == crs_label(monaco.crs)
    counts = layer.metadata["geometry_counts"]
    assert counts["outside_extent"] == len(frame) == counts["features_in"]
    assert "outside the city extent" in layer.metadata["geometry_report"]
    assert monaco.reports["schools"].outside_extent == len(frame)
    assert layer.group == ADDED_GROUP and monaco.tree.items[0].name == ADDED_GROUP
    assert layer.metadata["source_crs"].startswith("EPSG:27700")
    again = add_layer_from_file(monaco, gis_data / "carlisle" / "schools.gpkg")
    assert again[0].name == "schools (2)"
    assert [lay.name for lay in monaco.tree.group(ADDED_GROUP).children] == ["schools (2)", "schools"]


def test_same_crs_geojson_matches_the_one_map(carlisle: OneMap, gis_data: Path) -> None:
    inflows = add_layer_from_file(carlisle, gis_data / "carlisle" / "inflows.geojson", role="inflows")
    assert inflows[0].name == "inflows" and inflows[0].role == "inflows"
    added, own = carlisle.data["inflows"], carlisle.data["Inflows"]
    assert np.array_equal(shapely.get_coordinates(added.geometry.values), shapely.get_coordinates(own.geometry.values))
    assert inflows[0].metadata["geometry_counts"]["outside_extent"] == 0
    first = add_layer_from_file(carlisle, gis_data / "carlisle" / "boundary.geojson", role="boundary")
    second = add_layer_from_file(carlisle, gis_data / "carlisle" / "boundary.geojson")
    assert [first[0].name, second[0].name] == ["boundary", "boundary (2)"]
    assert shapely.equals(carlisle.data["boundary"].geometry.iloc[0], carlisle.boundary)


def test_raster_is_added_as_a_grid(carlisle: OneMap, gis_data: Path) -> None:
    layers = add_layer_from_file(carlisle, gis_data / "carlisle" / "dem.tif", name="Surface model")
    grid = carlisle.data["Surface model"]
    own = carlisle.data["Terrain"]
    assert layers[0].kind == "raster" and isinstance(grid, Grid)
    assert not layers[0].metadata["categorical"] and not layers[0].metadata["outside_extent"]
    assert grid.shape == own.shape and grid.transform == own.transform
    assert np.array_equal(grid.values, own.values, equal_nan=True)
    cover = add_layer_from_file(carlisle, gis_data / "carlisle" / "landcover.tif")
    assert cover[0].metadata["categorical"] and np.issubdtype(carlisle.data["landcover"].values.dtype, np.integer)


def test_osm_extract_gives_several_layers_in_one_pass(monaco: OneMap, gis_data: Path) -> None:
    layers = add_layer_from_file(monaco, gis_data / "monaco" / "monaco.osm.pbf")
    names = {layer.name: layer for layer in layers}
    assert {"Buildings (2)", "Roads (2)", "Land use (2)", "Points of interest (2)"} <= set(names)
    assert names["Buildings (2)"].role == "buildings" and names["Roads (2)"].role == "roads"
    for own in ("Buildings", "Roads", "Points of interest"):
        assert len(monaco.data[f"{own} (2)"]) == len(monaco.data[own])
        assert np.allclose(_coords_by_id(monaco.data[f"{own} (2)"]), _coords_by_id(monaco.data[own]), atol=1e-6)
    only = add_layer_from_file(monaco, gis_data / "monaco" / "monaco.osm.pbf", layer="Buildings")
    assert [layer.name for layer in only] == ["Buildings (3)"]


def _pois_4326(monaco: OneMap) -> gpd.GeoDataFrame:
    pois = monaco.data["Points of interest"][["osm_type", "osm_id", "name", "amenity", "geometry"]]
    return pois.to_crs("EPSG:4326")


def _assert_same_places(added: gpd.GeoDataFrame, own: gpd.GeoDataFrame) -> None:
    own = own[own["osm_id"].isin(added["osm_id"])]
    assert len(own) == len(added) > 0
    assert np.abs(_coords_by_id(added) - _coords_by_id(own)).max() < 1e-6


def test_geojson_flatgeobuf_and_zipped_shapefile_in_wgs84_are_reprojected(monaco: OneMap, tmp_path: Path) -> None:
    pois = _pois_4326(monaco)
    pois.to_file(tmp_path / "pois.geojson", driver="GeoJSON")
    pois.to_file(tmp_path / "pois.fgb", driver="FlatGeobuf")
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    points = pois[pois.geom_type == "Point"]
    points.to_file(shp_dir / "poi_points.shp")
    with zipfile.ZipFile(tmp_path / "poi_points.zip", "w") as archive:
        for part in shp_dir.iterdir():
            archive.write(part, part.name)

    own = monaco.data["Points of interest"]
    for file, expected in (("pois.geojson", "pois"), ("pois.fgb", "pois (2)"), ("poi_points.zip", "poi_points")):
        layers = add_layer_from_file(monaco, tmp_path / file, role="pois")
        assert [layer.name for layer in layers] == [expected]
        added = monaco.data[expected]
        assert added.crs == monaco.crs
        assert layers[0].metadata["source_crs"].startswith("EPSG:4326")
        _assert_same_places(added, own)


def test_geopackage_layers_are_added_one_each(monaco: OneMap, tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    pois = _pois_4326(monaco)
    pois[pois.geom_type == "Point"].to_file(path, layer="points", driver="GPKG")
    monaco.data["Water"].to_file(path, layer="water", driver="GPKG")
    layers = add_layer_from_file(monaco, path)
    assert sorted(layer.name for layer in layers) == ["points", "water"]
    picked = add_layer_from_file(monaco, path, layer="water", name="Sea")
    assert [layer.name for layer in picked] == ["Sea"]
    with pytest.raises(InputError, match="layer 'roads' does not exist"):
        add_layer_from_file(monaco, path, layer="roads")


# ----------------------------------------------------------------------------- failures


def test_failures_add_nothing(monaco: OneMap, tmp_path: Path) -> None:
    before = _state(monaco)
    (tmp_path / "notes.xyz").write_text("1 2 3\n")
    (tmp_path / "broken.gpkg").write_bytes(b"not a geopackage")
    (tmp_path / "empty.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "broken.obj").write_text("this is not a model\n")
    (tmp_path / "bad.city.json").write_text('{"type": "CityJSON", "version": "2.0"}')
    cases = {
        "notes.xyz": "unknown file type", "broken.gpkg": "not a readable vector file",
        "empty.geojson": "no features", "broken.tif": "not a readable raster",
        "broken.obj": "no geometry could be read", "bad.city.json": "vertices", "missing.gpkg": "file not found",
    }
    for file, message in cases.items():
        with pytest.raises(InputError, match=message) as info:
            add_layer_from_file(monaco, tmp_path / file)
        assert str(tmp_path / file) in str(info.value)
        assert _state(monaco) == before
    with pytest.raises(InputError, match="GeoPackage"):
        add_layer_from_file(monaco, tmp_path / "notes.xyz")
    with pytest.raises(InputError, match="role"):
        add_layer_from_file(monaco, tmp_path / "empty.geojson", role="castle")
    assert _state(monaco) == before


def test_a_failure_while_adding_rolls_everything_back(monaco: OneMap, gis_data: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = _state(monaco)
    real_add = LayerTree.add
    calls = []

    def failing_add(self, layer, group=None, index=None):
        calls.append(layer.name)
        if len(calls) == 3:
            raise RuntimeError("view crashed")
        return real_add(self, layer, group=group, index=index)

    monkeypatch.setattr(LayerTree, "add", failing_add)
    with pytest.raises(RuntimeError):
        add_layer_from_file(monaco, gis_data / "monaco" / "monaco.osm.pbf")
    assert len(calls) == 3
    assert _state(monaco) == before and monaco.tree.group(ADDED_GROUP) is None


# ----------------------------------------------------------------------------- 3D models


def _local_building(monaco: OneMap) -> pv.PolyData:
    """A real Monaco building extruded 18 m, moved to local coordinates (centred on 0) and triangulated."""
    frame = monaco.data["Buildings"]
    polygon = frame.geometry[frame.geom_type == "Polygon"].iloc[0]
    centre = polygon.centroid
    local = affinity.translate(polygon, -centre.x, -centre.y)
    return extrude_polygons(np.array([local]), 0.0, 18.0, floor=True).triangulate()


def _write_glb(mesh: pv.PolyData, path: Path) -> None:
    """A minimal glTF 2.0 binary file (one mesh, Y up as glTF requires) for a triangulated PolyData."""
    points = np.asarray(mesh.points, dtype=np.float64)
    y_up = np.column_stack([points[:, 0], points[:, 2], -points[:, 1]]).astype(np.float32)
    indices = mesh.faces.reshape(-1, 4)[:, 1:].astype(np.uint32).ravel()
    blob = y_up.tobytes() + indices.tobytes()
    doc = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "mode": 4}]}],
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": y_up.nbytes, "target": 34962},
                        {"buffer": 0, "byteOffset": y_up.nbytes, "byteLength": indices.nbytes, "target": 34963}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": len(y_up), "type": "VEC3",
                       "min": y_up.min(axis=0).tolist(), "max": y_up.max(axis=0).tolist()},
                      {"bufferView": 1, "componentType": 5125, "count": len(indices), "type": "SCALAR"}],
    }
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\x00" * (-len(blob) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(blob), b"BIN\x00") + blob
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)


def test_models_in_every_format_read_back_and_are_placed_at_the_centre(monaco: OneMap, tmp_path: Path) -> None:
    model = _local_building(monaco)
    for suffix in (".obj", ".ply", ".stl", ".vtp"):
        model.save(tmp_path / f"building{suffix}")
    _write_glb(model, tmp_path / "building.glb")
    xmin, ymin, xmax, ymax = monaco.extent()
    centre = ((xmin + xmax) / 2, (ymin + ymax) / 2)
    expected = np.array(model.bounds)
    for suffix in (".obj", ".ply", ".stl", ".vtp", ".glb"):
        path = tmp_path / f"building{suffix}"
        assert file_kind(path) == "mesh"
        layers = add_layer_from_file(monaco, path)
        layer = layers[0]
        mesh = monaco.data[layer.name]
        placement = layer.metadata["placement"]
        assert layer.kind == "mesh" and isinstance(mesh, pv.PolyData)
        assert placement["mode"] == "local"
        assert mesh.n_cells > 0 and mesh.is_all_triangles and mesh.points.dtype == np.float64
        dx, dy, dz = placement["offset"]
        moved_back = np.array(mesh.bounds) - np.array([dx, dx, dy, dy, dz, dz])
        assert np.allclose(moved_back, expected, atol=1e-4), suffix
        b = mesh.bounds
        assert np.allclose([(b[0] + b[1]) / 2, (b[2] + b[3]) / 2], centre, atol=1e-6)
        assert layer.metadata["triangles"] == mesh.n_cells
    assert monaco.tree.find("building (5)") is not None


def test_pyvista_gltf_export_reads_back_z_up(monaco: OneMap, tmp_path: Path) -> None:
    model = _local_building(monaco)
    plotter = pv.Plotter(off_screen=True)
    plotter.add_mesh(pv.PolyData(model.points, faces=model.faces), color="white")
    plotter.export_gltf(tmp_path / "building.gltf")
    plotter.close()
    mesh = read_mesh(tmp_path / "building.gltf")
    assert mesh.n_cells == model.n_cells
    got, want = np.array(mesh.bounds).reshape(3, 2), np.array(model.bounds).reshape(3, 2)
    assert np.allclose(got[2], want[2], atol=1e-4)
    assert np.allclose(sorted(np.ptp(got[:2], axis=1)), sorted(np.ptp(want[:2], axis=1)), atol=1e-4)


def test_georeferenced_model_stays_and_origin_places_local_ones(monaco: OneMap, tmp_path: Path) -> None:
    frame = monaco.data["Buildings"]
    polygon = frame.geometry[frame.geom_type == "Polygon"].iloc[5]
    model = extrude_polygons(np.array([polygon]), 10.0, 30.0).triangulate()
    model.save(tmp_path / "in_place.vtp")
    layer = add_layer_from_file(monaco, tmp_path / "in_place.vtp")[0]
    assert layer.metadata["placement"]["mode"] == "georeferenced"
    assert layer.metadata["placement"]["inside_extent"] is True
    assert np.allclose(monaco.data[layer.name].bounds, model.bounds, atol=1e-6)

    local = _local_building(monaco)
    placed, placement = place_mesh(local, origin=(372000.0, 4843000.0, 25.0))
    b = placed.bounds
    assert placement["mode"] == "local" and placement["origin"] == [372000.0, 4843000.0, 25.0]
    assert np.allclose([(b[0] + b[1]) / 2, (b[2] + b[3]) / 2, b[4]], [372000.0, 4843000.0, 25.0])
    far, far_placement = place_mesh(placed, origin=(0.0, 0.0, 0.0))
    assert far_placement["mode"] == "georeferenced" and np.allclose(far.bounds, placed.bounds)


def test_faces_with_holes_are_triangulated_in_their_plane() -> None:
    square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    hole = [(4, 4), (4, 6), (6, 6), (6, 4)]
    # A vertical wall (x = 5) with a window, given in 3D.
    vertices = np.array([(5.0, y, z) for y, z in square + hole])
    mesh = faces_to_mesh(vertices, np.arange(8), np.array([0, 4, 8]), np.array([0, 2]), {"feature": np.array([7])})
    assert mesh.n_cells > 0 and np.allclose(mesh.points[:, 0], 5.0)
    assert mesh.area == pytest.approx(100.0 - 4.0)
    assert set(mesh.cell_data["feature"]) == {7}


# ----------------------------------------------------------------------------- CityJSON


SCALE = 0.001
HEIGHTS = [(50.0, 12.5), (42.0, 20.0), (61.0, 31.25)]
COURTYARD = (7.0, 15.0)


def _snap(polygon: shapely.Polygon, translate: np.ndarray) -> shapely.Polygon:
    """The polygon on the file's millimetre grid, as a reader will see it."""
    return shapely.transform(polygon, lambda xy: np.round((xy - translate[:2]) / SCALE) * SCALE + translate[:2])


def _monaco_footprints(monaco: OneMap) -> list[shapely.Polygon]:
    """Three simple real buildings, and a fourth, nearly convex, given a courtyard."""
    frame = monaco.data["Buildings"]
    polys = frame.geometry[(frame.geom_type == "Polygon") & (frame.area > 150)].to_numpy()
    simple = [p for p in polys if not p.interiors][:3]
    convex = next(p for p in polys if p.area / p.convex_hull.area > 0.99 and p.area > 400 and p not in simple)
    court = affinity.scale(convex, 0.4, 0.4, origin="centroid")
    assert convex.contains(court)
    return simple + [shapely.Polygon(convex.exterior.coords, [court.exterior.coords[::-1]])]


class _CityJsonWriter:
    """Builds a small CityJSON 2.0 document with integer vertices (scale 0.001)."""

    def __init__(self, translate: np.ndarray):
        self.translate = translate
        self.vertices: list[list[int]] = []

    def ring(self, coords: np.ndarray, z: float) -> list[int]:
        start = len(self.vertices)
        for x, y in coords:
            self.vertices.append([int(round((v - t) / SCALE)) for v, t in zip((x, y, z), self.translate)])
        return list(range(start, start + len(coords)))

    def walls(self, coords: np.ndarray, z0: float, z1: float) -> list[list[list[int]]]:
        lower, upper = self.ring(coords, z0), self.ring(coords, z1)
        n = len(coords)
        return [[[lower[i], lower[(i + 1) % n], upper[(i + 1) % n], upper[i]]] for i in range(n)]

    def solid(self, polygon: shapely.Polygon, ground: float, height: float) -> list:
        ring = np.asarray(polygon.exterior.coords)[:-1]
        floor = [self.ring(ring[::-1], ground)]
        roof = [self.ring(ring, ground + height)]
        return [[floor, roof, *self.walls(ring, ground, ground + height)]]

    def multisurface(self, polygon: shapely.Polygon, ground: float, height: float) -> tuple[list, list]:
        outer = np.asarray(polygon.exterior.coords)[:-1]
        inner = np.asarray(polygon.interiors[0].coords)[:-1]
        floor = [self.ring(outer[::-1], ground), self.ring(inner[::-1], ground)]
        roof = [self.ring(outer, ground + height), self.ring(inner, ground + height)]
        walls = self.walls(outer, ground, ground + height) + self.walls(inner, ground, ground + height)
        return [floor, roof, *walls], [0, 1] + [2] * len(walls)

    def document(self, polygons: list[shapely.Polygon], reference: str) -> dict:
        objects: dict[str, dict] = {}
        for i, polygon in enumerate(polygons[:3]):
            ground, height = HEIGHTS[i]
            solid = {"type": "Solid", "lod": "1", "boundaries": self.solid(polygon, ground, height)}
            objects[f"b{i}"] = {"type": "Building", "attributes": {"storeys": i + 3, "usage": {"main": "housing"}},
                                "geometry": [solid]}
        footprint = {"type": "MultiSurface", "lod": "0",
                     "boundaries": [[self.ring(np.asarray(polygons[0].exterior.coords)[:-1], HEIGHTS[0][0])]]}
        objects["b0"]["geometry"].insert(0, footprint)
        # b2's solid belongs to a BuildingPart: it is merged into its parent.
        objects["b2-part"] = {"type": "BuildingPart", "parents": ["b2"], "geometry": objects["b2"]["geometry"]}
        objects["b2"]["geometry"] = []
        objects["b2"]["children"] = ["b2-part"]
        boundaries, values = self.multisurface(polygons[3], *COURTYARD)
        objects["court"] = {"type": "Building", "attributes": {"name": "courtyard"}, "geometry": [{
            "type": "MultiSurface", "lod": "2.2", "boundaries": boundaries,
            "semantics": {"surfaces": [{"type": "GroundSurface"}, {"type": "RoofSurface"}, {"type": "WallSurface"}],
                          "values": values}}]}
        return {"type": "CityJSON", "version": "2.0",
                "transform": {"scale": [SCALE] * 3, "translate": [float(v) for v in self.translate]},
                "metadata": {"referenceSystem": reference}, "CityObjects": objects, "vertices": self.vertices}


def _write_cityjson(path: Path, polygons: list[shapely.Polygon], reference: str) -> list[shapely.Polygon]:
    """Write the file; returns the polygons as snapped to its millimetre grid."""
    lo = np.floor(np.min([p.bounds[:2] for p in polygons], axis=0))
    translate = np.array([lo[0], lo[1], 0.0])
    writer = _CityJsonWriter(translate)
    path.write_text(json.dumps(writer.document(polygons, reference)))
    return [_snap(p, translate) for p in polygons]


def test_cityjson_objects_footprints_and_heights(monaco: OneMap, tmp_path: Path) -> None:
    path = tmp_path / "monaco.city.json"
    snapped = _write_cityjson(path, _monaco_footprints(monaco), "https://www.opengis.net/def/crs/EPSG/0/32632")
    model = read_cityjson(path)
    assert model.crs == UTM32N and model.version == "2.0"
    objects = model.objects
    assert list(objects["id"]) == ["b0", "b1", "b2", "court"]
    assert list(objects["lod"]) == ["1", "1", "1", "2.2"]
    footprints = model.footprints()
    for got, want in zip(footprints, snapped):
        assert got.area == pytest.approx(want.area, abs=1e-3)
        assert got.symmetric_difference(want).area < 1e-3
    assert len(footprints[3].interiors) == 1
    expected = HEIGHTS + [COURTYARD]
    assert np.allclose(objects["ground_m"], [g for g, _ in expected])
    assert np.allclose(objects["height_m"], [h for _, h in expected])
    assert objects["attributes"][0] == {"storeys": 3, "usage": {"main": "housing"}}
    assert len(read_cityjson(path, lod="0").objects) == 1

    layers = add_layer_from_file(monaco, path)
    assert [layer.name for layer in layers] == ["monaco 3D", "monaco buildings"]
    mesh, frame = monaco.data["monaco 3D"], monaco.data["monaco buildings"]
    assert layers[0].kind == "mesh" and layers[1].kind == "vector" and layers[1].role == "buildings"
    assert mesh.is_all_triangles and set(np.unique(mesh.cell_data["feature"])) == {0, 1, 2, 3}
    xmin, ymin, xmax, ymax = shapely.bounds(shapely.union_all(snapped))
    assert np.allclose(mesh.bounds[:4], [xmin, xmax, ymin, ymax], atol=1e-6)
    assert (frame["height_source"] == "cityjson").all()
    assert np.allclose(frame["height_m"], [h for _, h in expected])
    assert list(frame["cityjson_id"]) == ["b0", "b1", "b2", "court"]
    assert frame["usage"].iloc[0] == '{"main": "housing"}'
    assert layers[1].metadata["geometry_counts"]["outside_extent"] == 0
    # Roof and floor of each LOD1 solid: the mesh area holds twice each footprint.
    roofs = mesh.extract_cells(np.flatnonzero(mesh.cell_normals[:, 2] > 0.99))
    assert roofs.area == pytest.approx(sum(p.area for p in snapped), rel=1e-6)


def test_cityjson_in_another_crs_lands_on_the_same_places(monaco: OneMap, tmp_path: Path) -> None:
    polygons = _monaco_footprints(monaco)
    to_lambert = Transformer.from_crs(UTM32N, LAMBERT93, always_xy=True)
    in_lambert = [shapely.transform(p, lambda xy: np.column_stack(to_lambert.transform(xy[:, 0], xy[:, 1])))
                  for p in polygons]
    path = tmp_path / "lambert.json"
    _write_cityjson(path, in_lambert, "urn:ogc:def:crs:EPSG::2154")
    assert file_kind(path) == "cityjson"
    layers = add_layer_from_file(monaco, path)
    frame = monaco.data[layers[1].name]
    assert layers[1].metadata["source_crs"].startswith("EPSG:2154")
    for got, want in zip(frame.geometry, polygons):
        assert got.hausdorff_distance(want) < 0.01
    mesh = monaco.data[layers[0].name]
    assert layers[0].metadata["placement"]["mode"] == "georeferenced"
    assert np.allclose(mesh.bounds[:4], np.array(shapely.bounds(shapely.union_all(polygons)))[[0, 2, 1, 3]], atol=0.01)


def test_cityjson_without_crs_in_local_coordinates_is_placed(monaco: OneMap, tmp_path: Path) -> None:
    polygons = _monaco_footprints(monaco)
    centre = shapely.union_all(polygons).centroid
    local = [affinity.translate(p, -centre.x, -centre.y) for p in polygons]
    path = tmp_path / "local.city.json"
    snapped = _write_cityjson(path, local, reference="")
    document = json.loads(path.read_text())
    del document["metadata"]
    path.write_text(json.dumps(document))
    assert read_cityjson(path).crs is None
    layers = add_layer_from_file(monaco, path, origin=(372500.0, 4843500.0))
    placement = layers[0].metadata["placement"]
    assert placement["mode"] == "local" and "crs_assumed" in placement
    frame = monaco.data[layers[1].name]
    dx, dy, _ = placement["offset"]
    for got, want in zip(frame.geometry, snapped):
        assert got.symmetric_difference(affinity.translate(want, dx, dy)).area < 1e-3
    x0, y0, x1, y1 = shapely.bounds(shapely.union_all(frame.geometry.values))
    assert np.allclose([(x0 + x1) / 2, (y0 + y1) / 2], [372500.0, 4843500.0])


def test_reference_systems() -> None:
    assert parse_reference_system("https://www.opengis.net/def/crs/EPSG/0/7415").to_epsg() == 28992
    assert parse_reference_system("urn:ogc:def:crs:EPSG::28992").to_epsg() == 28992
    assert parse_reference_system("urn:ogc:def:crs:EPSG:6.18:3:7415").to_epsg() == 28992
    assert parse_reference_system("EPSG:2154").to_epsg() == 2154
    with pytest.raises(ValueError, match="unknown reference system"):
        parse_reference_system("not a crs")


def test_bad_cityjson_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({
        "type": "CityJSONFeature", "version": "2.0", "transform": {"translate": [0, 0, 0]},
        "CityObjects": {
            "b12": {"type": "Building", "geometry": [{"type": "Solid", "lod": "1",
                                                      "boundaries": [[[[0, 1, 2]], [[0, 2, 99]]]]}]},
            "b13": {"type": "Building", "geometry": [{"type": "MultiSurface", "lod": "2", "boundaries": [[0, 1, 2]]}]},
        },
        "vertices": [[0, 0, 0], [1000, 0, 0], [1000, 1000, 0]],
    }))
    with pytest.raises(InputError) as info:
        read_cityjson(path)
    where = {p.where: p.message for p in info.value.problems}
    assert set(where) == {"type", "transform.scale", "CityObjects.b12.geometry[0].boundaries",
                          "CityObjects.b13.geometry[0].boundaries"}
    assert "99" in where["CityObjects.b12.geometry[0].boundaries"]
    assert all(p.source == str(path) for p in info.value.problems)
    assert "4 problems" in str(info.value)
