"""Land classes of the Third National Land Survey: tables, tag mapping, exact areas."""

from __future__ import annotations

import re
import time
import tomllib

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Polygon, box

from twin.errors import InputError
from twin.geo.landclass import (
    UNCLASSIFIED,
    LandClassAreas,
    classify_features,
    land_class_areas,
    land_class_style,
    load_land_classes,
    load_tag_mapping,
    load_value_mapping,
    raster_land_class_areas,
    road_widths_m,
)
from twin.geo.style import RAMPS, colours_for

CRS = "EPSG:32632"


@pytest.fixture(scope="module")
def mapping():
    return load_tag_mapping()


def frame(rows: list[dict], geoms: list) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=CRS)


# ----------------------------------------------------------------------------- tables


def test_class_table_keeps_leading_zeros_and_report_order():
    classes = load_land_classes()
    assert list(classes["code"]) == ["01", "02", "03", "04", "00", "20", "10", "11", "12"]
    assert classes.loc[classes["code"] == "00", "name_zh"].item() == "湿地"
    assert classes["color"].str.match(r"^#[0-9a-f]{6}$").all()


def test_land_classes_ramp_matches_the_table():
    assert list(RAMPS["land_classes"]) == list(load_land_classes()["color"])


def test_shipped_mapping_is_valid_and_covers_the_key_tags(mapping):
    table = mapping.table
    assert not table.duplicated(["key", "value"]).any()
    assert set(table["code"]) <= set(mapping.classes["code"])
    expect = {
        ("landuse", "farmland"): "01", ("landuse", "paddy"): "01", ("landuse", "farmyard"): "20",
        ("landuse", "orchard"): "02", ("landuse", "vineyard"): "02", ("landuse", "forest"): "03",
        ("natural", "wood"): "03", ("natural", "scrub"): "03", ("natural", "grassland"): "04",
        ("landuse", "meadow"): "04", ("natural", "wetland"): "00", ("natural", "mud"): "00",
        ("natural", "water"): "11", ("waterway", "riverbank"): "11", ("landuse", "reservoir"): "11",
        ("natural", "beach"): "12", ("natural", "bare_rock"): "12", ("landuse", "residential"): "20",
        ("leisure", "park"): "20", ("amenity", "school"): "20", ("building", "yes"): "20",
        ("landuse", "railway"): "10", ("aeroway", "runway"): "10", ("amenity", "parking"): "10",
        ("landuse", "port"): "10", ("water", "pond"): "11",
    }
    for (key, value), code in expect.items():
        assert mapping.lookup(key, value)[0] == code, (key, value)
    # Water is painted over a park, a building over land use, a park over a residential zone.
    assert mapping.lookup("natural", "water")[1] > mapping.lookup("leisure", "park")[1]
    assert mapping.lookup("building", "yes")[1] > mapping.lookup("landuse", "residential")[1]
    assert mapping.lookup("leisure", "park")[1] > mapping.lookup("landuse", "residential")[1]
    assert mapping.lookup("building", "no") is None


def test_mapping_errors_are_all_listed_with_lines(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text(
        "key,value,code,priority\n"
        "landuse,forest,03,60\n"
        "landuse,farmland,07,60\n"      # line 3: unknown class
        "landuse,forest,03,50\n"        # line 4: duplicate of line 2
        "natural,water,11,high\n",      # line 5: bad priority
        encoding="utf-8",
    )
    with pytest.raises(InputError) as err:
        load_tag_mapping(path)
    problems = err.value.problems
    assert len(problems) == 3
    assert [p.where for p in problems] == ["line 3", "line 4", "line 5"]
    assert "unknown land class code '07'" in problems[0].message
    assert "line 2" in problems[1].message
    assert "'high'" in problems[2].message
    assert all(p.source == str(path) for p in problems)


def test_mapping_hints_at_dropped_leading_zero(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("key,value,code,priority\nlanduse,forest,3,60\n", encoding="utf-8")
    with pytest.raises(InputError, match="did you mean '03'"):
        load_tag_mapping(path)


def test_mapping_missing_columns(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("key,value,class\nlanduse,forest,03\n", encoding="utf-8")
    with pytest.raises(InputError, match="missing column"):
        load_tag_mapping(path)


def test_value_mapping_of_a_sample_city(gis_data):
    path = gis_data / "carlisle" / "landcover_classes.csv"
    if not path.exists():
        pytest.skip("Carlisle sample city not present")
    mapping = load_value_mapping(path)
    assert mapping and set(mapping.values()) <= set(load_land_classes()["code"])


def test_value_mapping(tmp_path):
    path = tmp_path / "landcover.csv"
    path.write_text("value,name,land_class\n10,Tree cover,03\n50,Built-up,20\n80,Water,11\n", encoding="utf-8")
    assert load_value_mapping(path) == {10: "03", 50: "20", 80: "11"}
    path.write_text("value,land_class\n10,03\n10,20\n20,99\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_value_mapping(path)
    assert len(err.value.problems) == 2


# ----------------------------------------------------------------------------- classify


def test_classify_features_exact_beats_wildcard_and_priority_wins(mapping):
    rows = [
        {"landuse": "forest"},
        {"landuse": "residential", "natural": "water"},
        {"building": "yes"},
        {"building": "no"},
        {"amenity": "parking"},
        {"amenity": "bench"},
        {"landuse": "something_new"},
        {},
    ]
    gdf = frame(rows, [box(0, 0, 1, 1)] * len(rows))
    codes, priority = classify_features(gdf, mapping)
    assert list(codes) == ["03", "11", "20", None, "10", "20", None, None]
    assert priority.iloc[1] == mapping.lookup("natural", "water")[1]
    assert priority.iloc[4] == mapping.lookup("amenity", "parking")[1]
    assert priority.isna().tolist() == [False, False, False, True, False, False, True, True]
    assert codes.index.equals(gdf.index)


def test_classify_without_tag_columns(mapping):
    gdf = frame([{"name": "a"}], [box(0, 0, 1, 1)])
    codes, priority = classify_features(gdf, mapping)
    assert codes.tolist() == [None] and priority.isna().all()


# ----------------------------------------------------------------------------- vector areas


@pytest.fixture()
def square_city():
    """100 m x 100 m boundary; forest, water, roads and buildings with hand-computed areas."""
    boundary = gpd.GeoDataFrame(geometry=[box(0, 0, 100, 100)], crs=CRS)
    land = frame(
        [{"natural": "wood"}, {"natural": "water"}, {"leisure": "nature_reserve"}],
        [box(0, 0, 50, 50), box(40, 0, 60, 100), box(-50, -50, 150, 150)],
    )
    roads = frame(
        [
            {"highway": "primary", "lanes": "2", "tunnel": None},       # 7 m wide
            {"highway": "residential", "lanes": None, "tunnel": None},  # 5.5 m by class
            {"highway": "primary", "lanes": "2", "tunnel": "yes"},      # underground: no land
        ],
        [LineString([(-10, 80), (110, 80)]), LineString([(90, -5), (90, 105)]),
         LineString([(-10, 30), (110, 30)])],
    )
    buildings = frame([{"building": "yes"}, {"building": "yes"}],
                      [box(70, 10, 80, 20), box(95, 40, 105, 50)])
    return boundary, land, roads, buildings


# Forest minus the water over it; water whole (above roads); roads: 7 m band minus the water
# crossing, plus the 5.5 m band, minus their shared square; buildings clipped to the boundary.
FOREST = 50 * 50 - 10 * 50
WATER = 20 * 100
ROADS = (100 * 7 - 20 * 7) + 100 * 5.5 - 7 * 5.5
BUILDINGS = 10 * 10 + 5 * 10
REST = 100 * 100 - FOREST - WATER - ROADS - BUILDINGS


def test_areas_are_exact_on_analytic_geometry(square_city, mapping):
    boundary, land, roads, buildings = square_city
    result = land_class_areas(boundary, [land], mapping, roads=roads, buildings=buildings)
    areas = dict(zip(result.table["code"], result.table["area_m2"]))
    assert areas["03"] == pytest.approx(FOREST, abs=1e-6)
    assert areas["11"] == pytest.approx(WATER, abs=1e-6)
    assert areas["10"] == pytest.approx(ROADS, abs=1e-6)
    assert areas["20"] == pytest.approx(BUILDINGS, abs=1e-6)
    assert areas[UNCLASSIFIED] == pytest.approx(REST, abs=1e-6)
    assert areas["01"] == 0.0
    assert result.boundary_area_m2 == pytest.approx(10_000, abs=1e-9)
    assert abs(result.closure_error_m2) / result.boundary_area_m2 < 1e-6
    assert result.table["share"].sum() == pytest.approx(1.0)
    assert list(result.table.columns) == ["code", "name_zh", "name_en", "area_m2", "share"]
    # The map geometry has the same areas and does not overlap.
    geom_areas = dict(zip(result.geometry["code"], result.geometry.area))
    for code, area in geom_areas.items():
        assert area == pytest.approx(areas[code], abs=1e-6)
    assert shapely.union_all(result.geometry.geometry.values).area == pytest.approx(10_000, abs=1e-6)
    assert result.geometry.crs == boundary.crs
    assert result.area("11") == pytest.approx(WATER, abs=1e-6)


def test_default_class_takes_the_uncovered_rest(square_city, mapping):
    boundary, land, roads, buildings = square_city
    result = land_class_areas(boundary, [land], mapping, roads=roads, buildings=buildings, default_code="20")
    areas = dict(zip(result.table["code"], result.table["area_m2"]))
    assert UNCLASSIFIED not in areas
    assert areas["20"] == pytest.approx(BUILDINGS + REST, abs=1e-6)
    assert abs(result.closure_error_m2) < 1e-6


def test_road_width_column_and_callable(square_city, mapping):
    boundary, _, roads, _ = square_city
    roads = roads.assign(width=[10.0, np.nan, 10.0])
    by_column = land_class_areas(boundary, [], mapping, roads=roads, road_width_m="width")
    expected = 100 * 10 + 100 * 5.5 - 10 * 5.5  # the missing width falls back to the class width
    assert by_column.area("10") == pytest.approx(expected, abs=1e-6)
    by_callable = land_class_areas(boundary, [], mapping, roads=roads, road_width_m=lambda r: np.full(len(r), 2.0))
    assert by_callable.area("10") == pytest.approx(100 * 2 + 100 * 2 - 4, abs=1e-6)


def test_road_widths_from_lanes_and_class():
    roads = pd.DataFrame({"highway": ["motorway", "footway", "unknown", ["residential", "service"]],
                          "lanes": ["3", None, "2;3", None]})
    assert road_widths_m(roads).tolist() == [10.5, 2.0, 7.0, 5.5]


def test_invalid_geometry_is_repaired(mapping):
    boundary = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs=CRS)
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10), (0, 0)])  # self-intersecting: two triangles
    land = frame([{"landuse": "forest"}], [bowtie])
    result = land_class_areas(boundary, [land], mapping, default_code="04")
    assert result.area("03") == pytest.approx(50.0, abs=1e-9)
    assert result.area("04") == pytest.approx(50.0, abs=1e-9)
    assert result.repairs == {"layers[0]": 1}


def test_bad_inputs_are_reported_together(mapping):
    boundary = gpd.GeoDataFrame(geometry=[box(7.4, 43.7, 7.5, 43.8)], crs="EPSG:4326")
    land = frame([{"landuse": "forest"}], [box(0, 0, 1, 1)])
    with pytest.raises(InputError) as err:
        land_class_areas(boundary, [land], mapping, default_code="99")
    wheres = [(p.source, p.where) for p in err.value.problems]
    assert ("boundary", "crs") in wheres
    assert ("layers[0]", "crs") in wheres
    assert any(p.source == "default_land_class" for p in err.value.problems)


def test_save_and_load(square_city, mapping, tmp_path):
    boundary, land, roads, buildings = square_city
    result = land_class_areas(boundary, [land], mapping, roads=roads, buildings=buildings)
    result.save(tmp_path / "land_classes")
    back = LandClassAreas.load(tmp_path / "land_classes")
    pd.testing.assert_frame_equal(back.table, result.table)
    assert back.closure_error_m2 == result.closure_error_m2
    assert back.geometry.area.sum() == pytest.approx(10_000, abs=1e-6)


def test_land_class_style_colours_codes():
    style = land_class_style()
    rgba = colours_for(style, ["03", "11", None])
    assert rgba[0].tolist() == [0x2F, 0x8A, 0x3B, 255]
    assert rgba[2, 3] == 0  # unknown / missing: transparent


# ----------------------------------------------------------------------------- raster areas


def test_raster_areas():
    grid = np.array([[1, 1, 2, 2],
                     [3, 3, 3, 7],
                     [1, 0, 0, 0]])
    inside = np.ones(grid.shape, dtype=bool)
    inside[2, :] = False  # last row outside the boundary
    result = raster_land_class_areas(grid, 25.0, {1: "01", 2: "03", 3: "11"}, inside)
    areas = dict(zip(result.table["code"], result.table["area_m2"]))
    assert areas["01"] == 50.0 and areas["03"] == 50.0 and areas["11"] == 75.0
    assert areas[UNCLASSIFIED] == 25.0  # value 7 has no class
    assert result.boundary_area_m2 == 200.0 and result.closure_error_m2 == 0.0
    assert result.table["share"].sum() == pytest.approx(1.0)

    floats = np.where(grid == 7, np.nan, grid).astype(float)
    result = raster_land_class_areas(floats, 25.0, {1: "01", 2: "03", 3: "11"}, inside, default_code="20",
                                     boundary_area_m2=210.0)
    areas = dict(zip(result.table["code"], result.table["area_m2"]))
    assert areas["20"] == 25.0 and UNCLASSIFIED not in areas
    assert result.closure_error_m2 == pytest.approx(10.0)


def test_raster_codes_directly_and_bad_inputs():
    codes = np.array([["03", "03"], ["11", "xx"]], dtype=object)
    result = raster_land_class_areas(codes, 1.0, None)
    assert result.area("03") == 2.0 and result.area(UNCLASSIFIED) == 1.0
    with pytest.raises(InputError) as err:
        raster_land_class_areas(np.zeros((2, 2)), -1.0, {0: "99"}, np.ones((3, 3), bool))
    assert len(err.value.problems) == 3


# ----------------------------------------------------------------------------- a real city


def _osm_layer(path, layer: str) -> gpd.GeoDataFrame:
    gdf = gpd.read_file(path, layer=layer)
    tags = gdf["other_tags"].fillna("").map(lambda s: dict(re.findall(r'"([^"]+)"=>"([^"]*)"', s)))
    extra = pd.DataFrame(list(tags), index=gdf.index)
    extra = extra[[c for c in extra.columns if c not in gdf.columns]]
    return pd.concat([gdf, extra], axis=1)


def _sources(folder) -> dict[str, str]:
    manifest = tomllib.loads((folder / "city.toml").read_text(encoding="utf-8"))
    return {layer["role"]: layer["source"] for layer in manifest.get("layers", [])}


def test_monaco_partition_closes_quickly(gis_data, mapping):
    folder = gis_data / "monaco"
    if not (folder / "city.toml").exists():
        pytest.skip("Monaco sample city not present")
    sources = _sources(folder)
    boundary = gpd.read_file(folder / sources["boundary"])
    crs = boundary.estimate_utm_crs()
    boundary = boundary.to_crs(crs)
    polygons = _osm_layer(folder / sources["roads"], "multipolygons").to_crs(crs)
    lines = _osm_layer(folder / sources["roads"], "lines").to_crs(crs)
    roads = lines[lines["highway"].notna()]
    buildings = polygons[polygons["building"].notna()]
    land = polygons[polygons["building"].isna()]
    assert len(roads) > 2000 and len(buildings) > 1000
    t0 = time.perf_counter()
    result = land_class_areas(boundary, [land], mapping, roads=roads, buildings=buildings, default_code="20")
    elapsed = time.perf_counter() - t0
    assert elapsed < 3.0
    assert abs(result.closure_error_m2) / result.boundary_area_m2 < 1e-6
    areas = dict(zip(result.table["code"], result.table["share"]))
    assert areas["20"] > 0.5 and 0.1 < areas["10"] < 0.35 and areas["11"] > 0.05 and areas["03"] > 0.005


def test_road_widths_of_directed_network_edges():
    edges = pd.DataFrame({"u": [1, 2, 2, 3], "v": [2, 1, 3, 4], "osm_way_id": [10, 10, 11, 12],
                          "road_class": ["primary", "primary", "residential", "footway"],
                          "lanes": [2, 1, 1, 0]})
    # Both directions of way 10 carry 3 lanes in all; one-way 11 has 1; 12 has no lane count.
    assert road_widths_m(edges).tolist() == [10.5, 10.5, 3.5, 2.0]
