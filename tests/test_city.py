"""The City on the real sample data: counts, CRS, heights, routes, land classes, cache."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import shapely
from pyproj import CRS, Geod, Transformer

from twin.city.city import City, load_city


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("city-cache")


@pytest.fixture(scope="session")
def monaco(gis_data: Path, cache_dir: Path) -> City:
    return load_city(gis_data / "monaco", cache_root=cache_dir)


@pytest.fixture(scope="session")
def helsinki(gis_data: Path, cache_dir: Path) -> City:
    return load_city(gis_data / "helsinki", cache_root=cache_dir)


@pytest.fixture(scope="session")
def carlisle(gis_data: Path, cache_dir: Path) -> City:
    return load_city(gis_data / "carlisle", cache_root=cache_dir)


def test_project_crs(monaco: City, helsinki: City, carlisle: City) -> None:
    assert monaco.crs.to_epsg() == 32632  # 7.42 E: UTM zone 32
    assert helsinki.crs.to_epsg() == 32635  # 24.94 E: UTM zone 35
    assert carlisle.crs.to_epsg() == 27700  # named in the manifest
    for city in (monaco, helsinki, carlisle):
        for layer in city.one_map.tree.layers:
            data = city.one_map.data[layer.name]
            if hasattr(data, "crs") and data.crs is not None:
                assert CRS.from_user_input(data.crs) == city.crs, layer.name


def test_monaco_feature_counts(monaco: City) -> None:
    data = monaco.one_map.data
    buildings = data["Buildings"]
    assert len(buildings) == 1283
    assert (buildings["osm_type"] == "way").sum() == 1256
    assert (buildings["osm_type"] == "relation").sum() == 27
    assert len(monaco.buildings) == 1283
    assert monaco.pois.counts() == {"hospital": 7, "fire_station": 2, "police": 9, "school": 10, "stadium": 1,
                                    "parking": 71, "shelter": 7}
    assert monaco.network.n_nodes == 647 and monaco.network.n_edges == 1040


def test_counts_other_cities(helsinki: City, carlisle: City) -> None:
    assert helsinki.one_map.reports["Buildings"].features_in == 482
    assert len(helsinki.buildings) == 446  # 36 buildings mapped as nodes have no footprint
    assert any("36 building features are not polygons" in n for n in helsinki.buildings.notes)
    assert len(carlisle.buildings) == 12031
    assert set(carlisle.buildings.frame["height_source"]) == {"source_data"}
    assert carlisle.pois.counts() == {"school": 30}
    assert carlisle.pois.frame["shelter"].all()
    assert carlisle.pois.frame["capacity"].notna().sum() == 19  # as in the source shapefile
    assert carlisle.network is None  # no OSM for Carlisle


def test_known_building_heights_and_sources(monaco: City) -> None:
    b = monaco.buildings
    millefiori = b.find(name="Le Millefiori")
    assert len(millefiori) == 1
    row = millefiori.iloc[0]
    assert row["height_m"] == pytest.approx(111.0)
    assert row["height_source"] == "height_tag"
    eucalyptus = b.find(name="Les Eucalyptus").iloc[0]
    assert eucalyptus["building:levels"] == "8"
    assert eucalyptus["height_m"] == pytest.approx(24.0) and eucalyptus["height_source"] == "levels_tag"
    counts = b.height_source_counts()
    assert counts == {"height_tag": 39, "levels_tag": 432, "source_data": 0, "type_default": 812}
    # A third of the buildings carry building:levels (the description of the data).
    assert 0.3 < (counts["levels_tag"] + counts["height_tag"]) / len(b) < 0.4


def test_floor_area_and_residents(monaco: City, carlisle: City) -> None:
    f = monaco.buildings.frame
    np.testing.assert_allclose(f["floor_area_m2"], f["footprint_m2"] * f["levels"])
    # The census population is shared out exactly.
    assert f["residents"].sum() == pytest.approx(38367, rel=1e-9)
    assert (f.loc[f["building"] == "church", "residents"] == 0).all()
    assert np.isnan(f["base_m"]).all()  # flat terrain: no invented elevation
    # Carlisle: ground elevation from the surface model, below the roof.
    c = carlisle.buildings.frame
    assert c["base_m"].notna().all()
    roof = carlisle.dem.sample(*shapely.get_coordinates(shapely.point_on_surface(c.geometry.values)).T)
    assert np.nanmedian(roof - c["base_m"].to_numpy()) > 3.0


def test_shortest_path_between_named_places(monaco: City) -> None:
    net = monaco.network.largest_strongly_connected()
    stadium = monaco.pois.of_kind("stadium").iloc[0]
    hospital = monaco.pois.frame[monaco.pois.frame["name"].fillna("").str.contains("Princesse Grace")].iloc[0]
    assert "Louis" in stadium["name"]
    src = net.nearest_node(stadium.geometry.x, stadium.geometry.y)
    dst = net.nearest_node(hospital.geometry.x, hospital.geometry.y)
    path = net.shortest_path(src, dst, weight="length_m")
    # Independent check: networkx Dijkstra on a graph built from the same edge arrays.
    graph = nx.DiGraph()
    for u, v, w in zip(net.edge_u.tolist(), net.edge_v.tolist(), net.length_m.tolist()):
        if not graph.has_edge(u, v) or graph[u][v]["w"] > w:
            graph.add_edge(u, v, w=w)
    expected = nx.dijkstra_path_length(graph, src, dst, weight="w")
    assert path.cost == pytest.approx(expected, rel=1e-12)
    assert path.cost == pytest.approx(2446.775, abs=0.01)  # regression value, confirmed by networkx above
    straight = float(np.hypot(*(net.node_xy[src] - net.node_xy[dst])))
    assert path.cost >= straight
    assert net.length_m[path.edges].sum() == pytest.approx(path.cost)


def test_land_class_areas_close_on_boundary(monaco: City, helsinki: City, carlisle: City) -> None:
    for city in (monaco, helsinki):
        lc = city.land_classes
        total = lc.table["area_m2"].sum()
        assert lc.boundary_area_m2 == pytest.approx(city.boundary.area)
        assert abs(total - lc.boundary_area_m2) / lc.boundary_area_m2 < 1e-6
    # The boundary's area agrees with the geodesic area of the lon/lat polygon (UTM scale error only).
    geod = Geod(ellps="WGS84")
    lonlat = shapely.transform(monaco.boundary, Transformer.from_crs(monaco.crs, "EPSG:4326", always_xy=True).transform,
                               interleaved=False)
    geodesic = abs(geod.geometry_area_perimeter(lonlat)[0])
    assert monaco.boundary.area == pytest.approx(geodesic, rel=2e-3)
    m = monaco.land_classes
    assert m.area("20") > m.area("10") > m.area("11") > 0  # built-up, then roads, then the harbours
    # Carlisle: a raster count inside a pixel-aligned catchment outline closes exactly.
    c = carlisle.land_classes
    assert c.table["area_m2"].sum() == pytest.approx(c.boundary_area_m2, rel=1e-9)
    assert c.boundary_area_m2 == pytest.approx(48_104_275.0)


def test_grids(carlisle: City, monaco: City) -> None:
    dem = carlisle.dem
    assert dem.shape == (1855, 1813) and dem.cell_size == (5.0, 5.0)
    assert float(np.nanmin(dem.values)) == pytest.approx(5.05, abs=0.01)
    assert float(np.nanmax(dem.values)) == pytest.approx(76.18, abs=0.01)
    assert carlisle.landcover.shape == dem.shape and carlisle.rain_zones.shape == dem.shape
    zones = np.unique(carlisle.rain_zones.values[carlisle.rain_zones.values >= 0])
    assert list(zones) == list(range(67))
    assert carlisle.rain.shape[1] - 1 == 67
    assert monaco.dem is None and monaco.terrain == "flat"


def test_elevations_on_network_ends_need_a_dem(monaco: City) -> None:
    assert np.isnan(monaco.network.node_z).all()


def test_second_load_comes_from_cache(gis_data: Path, tmp_path: Path) -> None:
    first = load_city(gis_data / "monaco", cache_root=tmp_path)
    second = load_city(gis_data / "monaco", cache_root=tmp_path)
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.network.indptr, second.network.indptr)
    np.testing.assert_array_equal(first.network.length_m, second.network.length_m)
    np.testing.assert_array_equal(first.buildings.frame["height_m"], second.buildings.frame["height_m"])
    assert first.buildings.frame["height_source"].tolist() == second.buildings.frame["height_source"].tolist()
    assert first.land_classes.table["area_m2"].tolist() == pytest.approx(second.land_classes.table["area_m2"].tolist())
    assert len(second.one_map.data["Buildings"]) == 1283
    assert second.one_map.reports["Buildings"].outside_extent == first.one_map.reports["Buildings"].outside_extent


def test_changed_input_is_not_served_from_cache(gis_data: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "monaco"
    shutil.copytree(gis_data / "monaco", folder)
    load_city(folder, cache_root=tmp_path / "cache")
    manifest = folder / "city.toml"
    manifest.write_text(manifest.read_text().replace("population = 38367", "population = 40000"))
    again = load_city(folder, cache_root=tmp_path / "cache")
    assert not again.from_cache
    assert again.buildings.frame["residents"].sum() == pytest.approx(40000)


def test_named_gauss_kruger_crs(tmp_path: Path) -> None:
    """A CGCS2000 3-degree Gauss-Kruger zone (EPSG:4548, CM 117E) as project CRS, in Jinan."""
    import json

    folder = tmp_path / "jinan"
    folder.mkdir()
    lon0, lat0, d = 117.02, 36.66, 0.01
    ring = [[lon0, lat0], [lon0 + d, lat0], [lon0 + d, lat0 + d], [lon0, lat0 + d], [lon0, lat0]]
    (folder / "boundary.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "test square"}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    (folder / "city.toml").write_text('[city]\nname = "Jinan test"\ncrs = "EPSG:4548"\nterrain = "flat"\n'
                                      'default_land_class = "20"\n\n[[layers]]\nname = "Boundary"\nrole = "boundary"\n'
                                      'source = "boundary.geojson"\n')
    city = load_city(folder, cache_root=tmp_path / "cache")
    assert city.crs.to_epsg() == 4548
    geodesic = abs(Geod(ellps="GRS80").polygon_area_perimeter([p[0] for p in ring], [p[1] for p in ring])[0])
    assert city.boundary.area == pytest.approx(geodesic, rel=1e-4)
    assert city.land_classes.area("20") == pytest.approx(city.boundary.area)
