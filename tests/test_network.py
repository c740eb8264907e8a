"""The drivable road network built from OSM ways (twin.city.network)."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import CRS, Transformer

from twin.city.network import (
    ROAD_CLASSES,
    RoadNetwork,
    build_road_network,
    is_drivable,
    parse_maxspeed_kph,
)
from twin.errors import InputError
from twin.geo.osm import read_osm_highways, read_osm_layers
from twin.geo.raster import Grid

MONACO_CRS = CRS.from_epsg(32632)    # UTM 32N
HELSINKI_CRS = CRS.from_epsg(32635)  # UTM 35N


@pytest.fixture(scope="module")
def monaco_ways(gis_data: Path):
    return read_osm_highways(gis_data / "monaco" / "monaco.osm.pbf")


@pytest.fixture(scope="module")
def monaco(monaco_ways) -> RoadNetwork:
    return build_road_network(monaco_ways, MONACO_CRS)


@pytest.fixture(scope="module")
def helsinki(gis_data: Path) -> RoadNetwork:
    return build_road_network(read_osm_highways(gis_data / "helsinki" / "helsinki.osm.pbf"),
                              HELSINKI_CRS)


def _nx_graph(net: RoadNetwork, weight: np.ndarray) -> nx.DiGraph:
    """An independent graph from the edge arrays (cheapest of parallel edges)."""
    g = nx.DiGraph()
    g.add_nodes_from(range(net.n_nodes))
    for u, v, w in zip(net.edge_u.tolist(), net.edge_v.tolist(), weight.tolist()):
        if not g.has_edge(u, v) or g[u][v]["w"] > w:
            g.add_edge(u, v, w=w)
    return g


def _edges_of_way(net: RoadNetwork, way_id: int) -> np.ndarray:
    return np.flatnonzero(net.osm_way_id == way_id)


# --------------------------------------------------------------------------- sizes


def test_regression_sizes(monaco, helsinki):
    assert (monaco.n_nodes, monaco.n_edges) == (647, 1040)
    assert (helsinki.n_nodes, helsinki.n_edges) == (691, 1115)
    scc = monaco.largest_strongly_connected()
    assert (scc.n_nodes, scc.n_edges) == (571, 947)
    hscc = helsinki.largest_strongly_connected()
    assert (hscc.n_nodes, hscc.n_edges) == (628, 1035)
    assert monaco.total_lane_km == pytest.approx(84.3425, abs=1e-3)


def test_arrays_consistent(monaco):
    m, n = monaco.n_edges, monaco.n_nodes
    for name in ("edge_v", "geometry", "length_m", "osm_way_id", "name", "road_class", "lanes",
                 "free_speed_mps", "capacity_vph", "oneway", "reversed", "bridge", "tunnel"):
        assert len(getattr(monaco, name)) == m, name
    assert monaco.node_xy.shape == (n, 2) and monaco.node_z.shape == (n,)
    assert np.unique(monaco.node_osm_id).size == n
    # geometry runs from u to v
    start = shapely.get_coordinates(shapely.get_point(monaco.geometry, 0))
    end = shapely.get_coordinates(shapely.get_point(monaco.geometry, -1))
    assert np.allclose(start, monaco.node_xy[monaco.edge_u])
    assert np.allclose(end, monaco.node_xy[monaco.edge_v])
    # CSR lists every edge once under its start node
    assert monaco.indptr[-1] == m
    assert np.array_equal(np.sort(monaco.csr_edge), np.arange(m))
    owner = np.repeat(np.arange(n), np.diff(monaco.indptr))
    assert np.array_equal(monaco.edge_u[monaco.csr_edge], owner)
    assert np.array_equal(monaco.indices, monaco.edge_v[monaco.csr_edge])


def test_lengths_at_least_straight_line(monaco, helsinki):
    for net in (monaco, helsinki):
        chord = np.hypot(*(net.node_xy[net.edge_v] - net.node_xy[net.edge_u]).T)
        assert (net.length_m >= chord * (1 - 1e-12)).all()
        assert (net.length_m > 0).all()
        assert np.allclose(net.length_m, shapely.length(net.geometry))


def test_total_length_matches_way_geometries(monaco_ways, monaco):
    """Sum of edges == drivable ways' projected lengths, two-way roads twice."""
    to_utm = Transformer.from_crs("EPSG:4326", MONACO_CRS, always_xy=True)
    expected = 0.0
    for i, tags in enumerate(monaco_ways.tags):
        if not is_drivable(tags):
            continue
        a, b = monaco_ways.node_offsets[i], monaco_ways.node_offsets[i + 1]
        x, y = to_utm.transform(monaco_ways.node_lon[a:b], monaco_ways.node_lat[a:b])
        length = shapely.LineString(np.column_stack([x, y])).length
        one_way = (tags.get("oneway") in ("yes", "-1", "1", "true")
                   or tags.get("junction") in ("roundabout", "circular"))
        expected += length * (1 if one_way else 2)
    assert monaco.length_m.sum() == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- routing


@pytest.fixture(scope="module")
def monaco_places(gis_data: Path):
    pois = read_osm_layers(gis_data / "monaco" / "monaco.osm.pbf",
                           {"p": {"amenity": "hospital", "leisure": "stadium"}})["p"]
    pois = pois.to_crs(MONACO_CRS)
    stadium = pois.loc[pois["name"] == "Stade Louis-II"].geometry.iloc[0].centroid
    hospital = pois.loc[pois["name"] == "Centre hospitalier Princesse Grace"].geometry.iloc[0].centroid
    return stadium, hospital


def test_stadium_to_hospital(monaco, monaco_places):
    net = monaco.largest_strongly_connected()
    stadium, hospital = monaco_places
    a = net.nearest_node(stadium.x, stadium.y)
    b = net.nearest_node(hospital.x, hospital.y)
    path = net.shortest_path(a, b)
    assert path.found
    assert path.cost == pytest.approx(3234.696, abs=1e-3)
    g = _nx_graph(net, net.length_m)
    assert path.cost == pytest.approx(nx.dijkstra_path_length(g, a, b, weight="w"), rel=1e-12)
    assert path.cost >= math.dist(net.node_xy[a], net.node_xy[b])
    # a contiguous chain of edges from a to b whose lengths add up to the cost
    assert path.nodes[0] == a and path.nodes[-1] == b
    assert np.array_equal(net.edge_u[path.edges], path.nodes[:-1])
    assert np.array_equal(net.edge_v[path.edges], path.nodes[1:])
    assert net.length_m[path.edges].sum() == pytest.approx(path.cost)
    # by time, and the all-nodes costs agree with single routes
    tt = net.shortest_path(a, b, weight="travel_time_s")
    g_t = _nx_graph(net, net.travel_time_s)
    assert tt.cost == pytest.approx(nx.dijkstra_path_length(g_t, a, b, weight="w"), rel=1e-12)
    costs = net.shortest_path_costs([a, b])
    assert costs.shape == (2, net.n_nodes)
    assert costs[0, b] == pytest.approx(path.cost)
    assert costs[1, a] == pytest.approx(net.shortest_path(b, a).cost)


def test_unreachable_has_infinite_cost(monaco):
    costs = monaco.shortest_path_costs(0)
    target = int(np.flatnonzero(np.isinf(costs[0]))[0])
    path = monaco.shortest_path(0, target)
    assert not path.found and path.nodes.size == 0 and path.edges.size == 0


def test_largest_scc_is_strongly_connected(monaco):
    scc = monaco.largest_strongly_connected()
    g = _nx_graph(scc, scc.length_m)
    assert nx.is_strongly_connected(g)
    full = _nx_graph(monaco, monaco.length_m)
    assert scc.n_nodes == max(len(c) for c in nx.strongly_connected_components(full))


def test_nearest_node(monaco):
    idx = np.array([0, 5, 100])
    x, y = monaco.node_xy[idx].T
    assert np.array_equal(monaco.nearest_node(x, y), idx)
    assert monaco.nearest_node(float(x[1]) + 0.5, float(y[1])) == 5


# --------------------------------------------------------------------------- attributes


def test_one_way_street(monaco):
    # Rue Terrazzani: highway=residential, oneway=yes, maxspeed=30
    e = _edges_of_way(monaco, 4227198)
    assert e.size > 0
    assert monaco.oneway[e].all() and not monaco.reversed[e].any()
    pairs = set(zip(monaco.edge_u[e].tolist(), monaco.edge_v[e].tolist()))
    assert not any((v, u) in pairs for u, v in pairs)
    assert np.allclose(monaco.free_speed_mps[e], 30 / 3.6)


def test_two_way_street_has_both_directions(monaco):
    # Avenue Princesse Alice: secondary, no oneway tag
    e = _edges_of_way(monaco, 4097656)
    fwd, bwd = e[~monaco.reversed[e]], e[monaco.reversed[e]]
    assert fwd.size == bwd.size > 0
    assert set(zip(monaco.edge_u[fwd], monaco.edge_v[fwd])) == set(
        zip(monaco.edge_v[bwd], monaco.edge_u[bwd]))
    assert not monaco.oneway[e].any()
    g = monaco.geometry
    assert np.allclose(shapely.length(g[fwd]).sum(), shapely.length(g[bwd]).sum())


def test_roundabouts_are_one_way(monaco_ways, monaco):
    ids = [int(w) for w, t in zip(monaco_ways.way_id, monaco_ways.tags)
           if t.get("junction") == "roundabout" and is_drivable(t)]
    e = np.flatnonzero(np.isin(monaco.osm_way_id, ids))
    assert e.size > 50
    assert monaco.oneway[e].all() and not monaco.reversed[e].any()


def test_reverse_one_way_and_service_roads(monaco_ways, monaco):
    # way 158215200: highway=service, oneway=-1: only in the drive_service network
    assert _edges_of_way(monaco, 158215200).size == 0
    assert not (monaco.road_class == ROAD_CLASSES.index(
        next(c for c in ROAD_CLASSES if c.name == "service"))).any()
    ds = build_road_network(monaco_ways, MONACO_CRS, network_type="drive_service")
    e = _edges_of_way(ds, 158215200)
    assert e.size > 0 and ds.reversed[e].all() and ds.oneway[e].all()
    assert ds.n_nodes > monaco.n_nodes


def test_filter_follows_osmnx_drive():
    assert is_drivable({"highway": "residential"})
    assert is_drivable({"highway": "primary_link", "access": "destination"})
    assert not is_drivable({"highway": "residential", "access": "private"})
    assert not is_drivable({"highway": "residential", "motor_vehicle": "no"})
    assert not is_drivable({"highway": "pedestrian"})
    assert not is_drivable({"highway": "footway"})
    assert not is_drivable({"highway": "residential", "area": "yes"})
    assert not is_drivable({"highway": "service"})
    assert is_drivable({"highway": "service"}, "drive_service")
    assert not is_drivable({"highway": "service", "service": "parking_aisle"}, "drive_service")
    assert is_drivable({"highway": "service", "service": "driveway"}, "drive_service")


def test_lanes_and_capacity(monaco):
    table = {c.name: c.capacity_per_lane_vph for c in ROAD_CLASSES}
    names = np.asarray(monaco.road_class_names)[monaco.road_class]
    per_lane = np.array([table[n] for n in names])
    assert np.allclose(monaco.capacity_vph, monaco.lanes * per_lane)
    assert (monaco.lanes >= 1).all()
    # Rue des Iris: oneway=yes, lanes=2 -> 2 lanes one way
    assert (monaco.lanes[_edges_of_way(monaco, 39838265)] == 2).all()


@pytest.mark.parametrize(("tag", "kph"), [
    ("50", 50.0), ("30 mph", 30 * 1.609344), ("50 km/h", 50.0), ("FR:urban", 50.0),
    ("RU:rural", 90.0), ("DE:zone30", 30.0), ("DE:zone:20", 20.0), ("walk", 7.0),
    ("50;30", 30.0), ("60|40", 40.0), ("none", math.nan), ("signals", math.nan),
    (None, math.nan), ("fast", math.nan),
])
def test_parse_maxspeed(tag, kph):
    got = parse_maxspeed_kph(tag)
    assert (math.isnan(got) and math.isnan(kph)) or got == pytest.approx(kph)


def test_default_speed_from_class(monaco_ways, monaco):
    untagged = {int(w) for w, t in zip(monaco_ways.way_id, monaco_ways.tags)
                if "maxspeed" not in t and t["highway"] == "residential"}
    e = np.flatnonzero(np.isin(monaco.osm_way_id, list(untagged)))
    assert e.size > 0 and np.allclose(monaco.free_speed_mps[e], 30 / 3.6)
    assert np.allclose(monaco.travel_time_s, monaco.length_m / monaco.free_speed_mps)


# --------------------------------------------------------------------------- elevation, io


def test_dem_elevations(monaco_ways, monaco):
    xmin, ymin = monaco.node_xy.min(axis=0) - 100
    xmax, ymax = monaco.node_xy.max(axis=0) + 100
    cell = 10.0
    cols, rows = int((xmax - xmin) // cell) + 1, int((ymax - ymin) // cell) + 1
    values = (np.arange(rows)[:, None] * 1000 + np.arange(cols)[None, :]).astype(np.float32)
    dem = Grid(values, Affine(cell, 0, xmin, 0, -cell, ymax), MONACO_CRS, units="m")
    net = build_road_network(monaco_ways, MONACO_CRS, dem=dem)
    col = np.floor((net.node_xy[:, 0] - xmin) / cell)
    row = np.floor((ymax - net.node_xy[:, 1]) / cell)
    assert np.array_equal(net.node_z, (row * 1000 + col).astype(np.float32))
    assert np.array_equal(net.z_u, net.node_z[net.edge_u])
    assert np.array_equal(net.z_v, net.node_z[net.edge_v])
    assert np.isnan(monaco.node_z).all()


def test_save_load_roundtrip(monaco, tmp_path):
    path = tmp_path / "roads.npz"
    monaco.save(path)
    back = RoadNetwork.load(path)
    assert back.crs == monaco.crs
    for name in ("node_osm_id", "node_xy", "edge_u", "edge_v", "length_m", "osm_way_id",
                 "road_class", "lanes", "free_speed_mps", "capacity_vph", "oneway", "reversed",
                 "bridge", "tunnel", "indptr", "indices", "csr_edge"):
        assert np.array_equal(getattr(back, name), getattr(monaco, name)), name
    assert np.array_equal(np.isnan(back.node_z), np.isnan(monaco.node_z))
    assert list(back.name) == list(monaco.name)
    assert shapely.equals_exact(back.geometry, monaco.geometry, tolerance=0).all()
    assert back.road_class_names == monaco.road_class_names
    gdf = back.to_geodataframe()
    assert len(gdf) == monaco.n_edges and gdf.crs == monaco.crs
    assert set(gdf["road_class"]) <= set(monaco.road_class_names)


def test_load_garbage(tmp_path):
    path = tmp_path / "roads.npz"
    path.write_text("nope")
    with pytest.raises(InputError, match="road network") as err:
        RoadNetwork.load(path)
    assert str(path) in str(err.value)


def test_geographic_crs_refused(monaco_ways):
    with pytest.raises(InputError, match="metric"):
        build_road_network(monaco_ways, CRS.from_epsg(4326))
    dem = Grid(np.zeros((2, 2), np.float32), Affine(10, 0, 0, 0, -10, 0), CRS.from_epsg(32631))
    with pytest.raises(InputError, match="DEM"):
        build_road_network(monaco_ways, MONACO_CRS, dem=dem)


def test_no_drivable_ways(monaco_ways):
    net = build_road_network(monaco_ways.subset(np.zeros(monaco_ways.n_ways, bool)), MONACO_CRS)
    assert (net.n_nodes, net.n_edges, net.total_lane_km) == (0, 0, 0.0)
    assert len(net.to_geodataframe()) == 0
