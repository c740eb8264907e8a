"""A city the size of Jinan's centre: tens of thousands of buildings through
``twin city init --bbox``, ``load_city`` and ``twin city info``.

There is no real extract of that size offline, so the input is a synthetic OSM
extract (``bench/synthetic_osm.py``) whose geometry is known: every count and
length the City reports is checked against what the generator wrote.  The
crop keeps ways complete, so a building counts when one of its vertices lies in
the box.  Speed is measured in ``bench/large_city.py``, not here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from twin.city.city import City, load_city
from twin.city.init import init_city
from twin.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from synthetic_osm import SyntheticCity, write_synthetic_city  # noqa: E402

MIN_BUILDINGS = 20_000
AREA_SHARE = 0.7


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCity:
    folder = tmp_path_factory.mktemp("extract")
    return write_synthetic_city(folder / "jinan.osm.pbf", blocks_x=44, blocks_y=40, buildings_per_block=20, seed=7)


@pytest.fixture(scope="module")
def bbox(source: SyntheticCity) -> tuple[float, float, float, float]:
    return source.inner_bbox(AREA_SHARE)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def gauss_kruger(source: SyntheticCity, bbox, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> City:
    """CGCS2000 / 3-degree Gauss-Kruger CM 117E, made with the library call."""
    folder = tmp_path_factory.mktemp("gk") / "jinan"
    init_city(folder, name="Jinan centre", osm=source.path, bbox_lonlat=bbox, crs="EPSG:4548")
    return load_city(folder, cache_root=cache_dir)


@pytest.fixture(scope="module")
def utm_folder(source: SyntheticCity, bbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local UTM zone (the default), made with the command line."""
    folder = tmp_path_factory.mktemp("utm") / "jinan"
    box = ",".join(repr(v) for v in bbox)
    assert main(["city", "init", str(folder), "--name", "Jinan centre", "--osm", str(source.path),
                 "--bbox", box]) == 0
    return folder


@pytest.fixture(scope="module")
def utm(utm_folder: Path, cache_dir: Path) -> City:
    return load_city(utm_folder, cache_root=cache_dir)


@pytest.fixture(scope="module", params=["gauss_kruger", "utm"])
def city(request: pytest.FixtureRequest) -> City:
    return request.getfixturevalue(request.param)


def test_project_crs(gauss_kruger: City, utm: City) -> None:
    assert gauss_kruger.crs.to_epsg() == 4548
    assert utm.crs.to_epsg() == 32650  # 117.0 E: UTM zone 50N


def test_buildings_are_the_ones_in_the_box(city: City, source: SyntheticCity, bbox) -> None:
    expected = source.buildings_touching(bbox)
    assert len(expected) >= MIN_BUILDINGS
    assert len(expected) < source.n_buildings  # the box really cuts the extract
    frame = city.buildings.frame
    assert len(city.buildings) == len(expected)
    assert sorted(frame["osm_id"].to_numpy()) == sorted(expected.tolist())
    # Wholly inside: every vertex, taken back to degrees, in the box.
    xy, owner = shapely.get_coordinates(frame.geometry.values, return_index=True)
    lon, lat = Transformer.from_crs(city.crs, "EPSG:4326", always_xy=True).transform(xy[:, 0], xy[:, 1])
    minlon, minlat, maxlon, maxlat = bbox
    outside = ~((lon >= minlon) & (lon <= maxlon) & (lat >= minlat) & (lat <= maxlat))
    within = np.bincount(owner, weights=outside, minlength=len(frame)) == 0
    assert sorted(frame.loc[within, "osm_id"]) == sorted(source.buildings_within(bbox).tolist())
    report = city.one_map.reports["Buildings"]
    assert report.features_in == len(expected) and report.repaired == 0 and report.empty_dropped == 0
    counts = city.buildings.height_source_counts()
    assert counts["height_tag"] > 0 and counts["levels_tag"] > 0 and counts["type_default"] > 0
    types = pd.Series(source.building_type[np.isin(source.building_way_id, expected)]).value_counts()
    assert frame["building"].value_counts().sort_index().to_dict() == types.sort_index().to_dict()


def test_points_of_interest(city: City, source: SyntheticCity, bbox) -> None:
    expected = source.pois_touching(bbox)
    counts = {kind: n for kind, n in city.pois.counts().items() if n}
    assert counts == expected
    parking = city.pois.of_kind("parking")
    assert parking["capacity"].notna().all()


def _network_grid(city: City, source: SyntheticCity, bbox) -> tuple[np.ndarray, np.ndarray]:
    """Network node of each street crossing inside the box (-1 outside), and the crossings in the city CRS."""
    inside = source.junctions_inside(bbox)
    net = city.network
    lookup = pd.Series(np.arange(net.n_nodes), index=net.node_osm_id)
    node = np.full(inside.shape, -1, dtype=np.int64)
    node[inside] = lookup.reindex(source.junction_node_id[inside]).to_numpy()
    to_crs = Transformer.from_crs("EPSG:4326", city.crs, always_xy=True)
    x, y = to_crs.transform(source.junction_lonlat[..., 0], source.junction_lonlat[..., 1])
    return node, np.stack([x, y], axis=-1)


def test_network_is_the_connected_grid(city: City, source: SyntheticCity, bbox) -> None:
    net = city.network
    node, _ = _network_grid(city, source, bbox)
    inside = source.junctions_inside(bbox)
    assert (node[inside] >= 0).all(), "every street crossing in the box is a network node"
    labels = net.strongly_connected_labels()
    largest = np.argmax(np.bincount(labels))
    # Inside the box the grid is one strongly connected part; only dead ends of
    # ways the crop kept whole, outside the box, may fall out of it.
    assert (labels[node[inside]] == largest).all()
    assert np.bincount(labels)[largest] >= 0.95 * net.n_nodes
    assert net.n_nodes < 2 * inside.sum()
    assert net.oneway.any() and not net.oneway.all()


def _grid_distance(xy: np.ndarray, source: SyntheticCity, rows: range, cols: range) -> float:
    """Shortest monotone walk along the grid from (rows[0], cols[0]) to (rows[-1], cols[-1]),
    north- and eastbound, over the streets' own lengths and one-way rules."""
    best = np.full((len(rows), len(cols)), np.inf)
    best[0, 0] = 0.0
    for a, j in enumerate(rows):
        for b, i in enumerate(cols):
            if a and source.ns_travel[i] >= 0:
                best[a, b] = min(best[a, b], best[a - 1, b] + np.hypot(*(xy[j, i] - xy[j - 1, i])))
            if b and source.ew_travel[j] >= 0:
                best[a, b] = min(best[a, b], best[a, b - 1] + np.hypot(*(xy[j, i] - xy[j, i - 1])))
    return float(best[-1, -1])


def _inner_grid(source: SyntheticCity, bbox) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of street crossings all inside the box, one street in from its edges."""
    inside = source.junctions_inside(bbox)
    rows = np.flatnonzero(inside.any(axis=1))[1:-1]
    cols = np.flatnonzero(inside.any(axis=0))[1:-1]
    assert inside[np.ix_(rows, cols)].all()
    return rows, cols


def test_block_sides_follow_the_one_way_rules(city: City, source: SyntheticCity, bbox) -> None:
    net = city.network
    node, _ = _network_grid(city, source, bbox)
    rows, cols = _inner_grid(source, bbox)
    have = set(zip(net.edge_u.tolist(), net.edge_v.tolist()))
    for j in rows:
        for a, b in zip(node[j, cols[:-1]], node[j, cols[1:]]):  # eastward along street j
            assert ((a, b) in have) == (source.ew_travel[j] >= 0)
            assert ((b, a) in have) == (source.ew_travel[j] <= 0)
    for i in cols:
        for a, b in zip(node[rows[:-1], i], node[rows[1:], i]):  # northward along street i
            assert ((a, b) in have) == (source.ns_travel[i] >= 0)
            assert ((b, a) in have) == (source.ns_travel[i] <= 0)


def test_shortest_path_is_the_manhattan_distance(city: City, source: SyntheticCity, bbox) -> None:
    node, xy = _network_grid(city, source, bbox)
    rows, cols = _inner_grid(source, bbox)
    two_way_rows = [j for j in rows if source.ew_travel[j] == 0]
    two_way_cols = [i for i in cols if source.ns_travel[i] == 0]
    (j0, j1), (i0, i1) = (two_way_rows[0], two_way_rows[-1]), (two_way_cols[0], two_way_cols[-1])
    assert i1 - i0 >= 20 and j1 - j0 >= 20
    path = city.network.shortest_path(node[j0, i0], node[j1, i1])
    along_grid = _grid_distance(xy, source, range(j0, j1 + 1), range(i0, i1 + 1))
    assert path.cost == pytest.approx(along_grid, rel=1e-6)
    # The grid is drawn square in metres of UTM 50N; EPSG:4548 has the same
    # central meridian at scale 1 instead of 0.9996.  What separates the route
    # from |dx| + |dy| is the 1e-7 degree storage step: each crossing moved by
    # at most ``shift``, so each block side walked by at most twice that.
    gx, gy = np.meshgrid(source.street_x_m, source.street_y_m)
    to_crs = Transformer.from_crs(source.layout_crs, city.crs, always_xy=True)
    ideal = np.stack(to_crs.transform(gx, gy), axis=-1)
    shift = np.hypot(*(xy - ideal)[j0:j1 + 1, i0:i1 + 1].reshape(-1, 2).T).max()
    assert shift < 0.01
    manhattan = np.abs(ideal[j1, i1] - ideal[j0, i0]).sum()
    assert abs(path.cost - manhattan) <= 2 * shift * ((i1 - i0) + (j1 - j0))
    back = city.network.shortest_path(node[j1, i1], node[j0, i0])
    assert back.cost == pytest.approx(path.cost, rel=1e-6)


def test_land_classes_close_on_the_boundary(city: City) -> None:
    lc = city.land_classes
    boundary_area = float(shapely.area(city.boundary))
    assert lc.boundary_area_m2 == pytest.approx(boundary_area, rel=1e-9)
    assert float(lc.table["area_m2"].sum()) == pytest.approx(boundary_area, rel=1e-6)
    assert abs(lc.closure_error_m2) <= 1e-6 * boundary_area
    areas = lc.table.set_index("code")["area_m2"]
    assert areas["20"] > 0.5 * boundary_area  # built-up: buildings, blocks, parks
    assert areas["10"] > 0.05 * boundary_area  # streets
    assert areas["11"] > 0  # ponds and the lake


def _values(frame: pd.DataFrame) -> pd.DataFrame:
    """The attribute values, with every missing value alike (the cache stores text as Arrow strings)."""
    plain = frame.drop(columns="geometry").astype(object)
    return plain.where(plain.notna(), None)


def test_second_load_comes_from_the_cache(gauss_kruger: City, cache_dir: Path) -> None:
    first = gauss_kruger
    again = load_city(first.manifest.folder, cache_root=cache_dir)
    assert not first.from_cache and again.from_cache
    assert again.crs == first.crs
    pd.testing.assert_frame_equal(_values(again.buildings.frame), _values(first.buildings.frame))
    assert shapely.equals_exact(again.buildings.frame.geometry.values, first.buildings.frame.geometry.values,
                                tolerance=0).all()
    a, b = again.network, first.network
    assert (a.n_nodes, a.n_edges) == (b.n_nodes, b.n_edges)
    for name in ("node_osm_id", "node_xy", "edge_u", "edge_v", "length_m", "lanes", "free_speed_mps", "oneway"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    pd.testing.assert_frame_equal(again.land_classes.table, first.land_classes.table)
    assert again.pois.counts() == first.pois.counts()
    for name in first.one_map.data:
        assert len(again.one_map.data[name]) == len(first.one_map.data[name]), name


def test_city_info_prints_the_counts(utm: City, utm_folder: Path, cache_dir: Path, capsys,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_CACHE_DIR", str(cache_dir))
    assert main(["city", "info", str(utm_folder)]) == 0
    out = capsys.readouterr().out
    n = len(utm.buildings)
    assert any(line.split()[:4] == ["Buildings", "buildings", "vector", f"{n:,}"] for line in out.splitlines())
    assert f"Road network: {utm.network.n_nodes:,} nodes, {utm.network.n_edges:,} directed edges" in out
    assert "CRS: EPSG:32650" in out
    assert "(from cache" in out
