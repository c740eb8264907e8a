"""Reading, cropping and describing OpenStreetMap extracts (twin.geo.osm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import osmium
import pytest
import shapely

from twin.errors import InputError
from twin.geo.osm import crop_osm, osm_header, read_osm_highways, read_osm_layers

LAYERS = {
    "buildings": {"building": True},
    "pois": {"amenity": ["hospital", "school"], "leisure": "stadium"},
    "roads": {"highway": True},
}
SMALL_BBOX = (7.42, 43.73, 7.43, 43.74)


@pytest.fixture(scope="module")
def monaco_pbf(gis_data: Path) -> Path:
    return gis_data / "monaco" / "monaco.osm.pbf"


@pytest.fixture(scope="module")
def helsinki_pbf(gis_data: Path) -> Path:
    return gis_data / "helsinki" / "helsinki.osm.pbf"


@pytest.fixture(scope="module")
def monaco_layers(monaco_pbf: Path) -> dict:
    return read_osm_layers(monaco_pbf, LAYERS)


def _to_xml(src: Path, dst: Path) -> None:
    with osmium.SimpleWriter(str(dst)) as writer:
        for obj in osmium.FileProcessor(str(src)):
            writer.add(obj)


def _keys(gdf) -> set[tuple[str, int]]:
    return set(zip(gdf["osm_type"], gdf["osm_id"].astype(int)))


# --------------------------------------------------------------------------- layers


def test_buildings_counts_and_polygons(monaco_layers):
    b = monaco_layers["buildings"]
    assert b["osm_type"].value_counts().to_dict() == {"way": 1256, "relation": 27}
    assert set(b.geom_type[b.osm_type == "way"]) == {"Polygon"}
    assert set(b.geom_type[b.osm_type == "relation"]) == {"MultiPolygon"}
    # two multipolygons have members outside the extract: counted, not dropped silently
    assert b.attrs["unbuildable"] == 2
    assert sorted(b.attrs["unbuildable_ids"]) == [("relation", 1369191), ("relation", 5197022)]
    assert b.attrs["ignored_relations"] == 1  # a type=site relation, not an area
    assert b.crs.to_epsg() == 4326
    assert b["building"].notna().all()


def test_one_row_per_feature_and_columns(monaco_layers):
    for gdf in monaco_layers.values():
        assert not gdf.duplicated(["osm_type", "osm_id"]).any()
        assert gdf["osm_id"].dtype == np.int64
        assert list(gdf.columns[:3]) == ["osm_type", "osm_id", "name"]
        assert gdf.geometry.notna().all() and not gdf.geometry.is_empty.any()
    b = monaco_layers["buildings"]
    assert b["name"].dtype == object
    missing = b["name"][b["name"].isna()]
    assert len(missing) > 0 and all(v is None for v in missing)


def test_pois_match_any_key(monaco_layers):
    p = monaco_layers["pois"]
    assert len(p) == 18
    stadium = p[p["osm_id"] == 49209155].iloc[0]
    assert stadium["leisure"] == "stadium" and stadium["name"] == "Stade Louis-II"
    hospital = p[p["osm_id"] == 49209406].iloc[0]
    assert hospital["amenity"] == "hospital"
    assert hospital["name"] == "Centre hospitalier Princesse Grace"
    ok = p["amenity"].isin(["hospital", "school"]) | (p["leisure"] == "stadium")
    assert ok.all()
    assert set(p.geom_type) <= {"Point", "Polygon", "MultiPolygon"}


def test_highways_are_lines_unless_areas(monaco_layers):
    r = monaco_layers["roads"]
    ways = r[r["osm_type"] == "way"]
    assert len(ways) == 2852
    lines = ways.geom_type == "LineString"
    # closed highway ways are polygons only when tagged as areas (osmnx's rule)
    polys = ways[~lines]
    assert len(polys) == 24
    area_tag = (polys["area"] == "yes") | polys["indoor"].notna()
    area_tag |= polys["public_transport"].notna() | polys["amenity"].notna()
    assert area_tag.all()
    roundabouts = ways[ways["junction"] == "roundabout"]
    assert (roundabouts.geom_type == "LineString").all()


def test_bbox_keeps_intersecting(monaco_pbf, monaco_layers):
    cut = read_osm_layers(monaco_pbf, {"buildings": {"building": True}},
                          bbox_lonlat=SMALL_BBOX)["buildings"]
    assert 0 < len(cut) < len(monaco_layers["buildings"])
    assert shapely.intersects(cut.geometry.values, shapely.box(*SMALL_BBOX)).all()
    assert _keys(cut) <= _keys(monaco_layers["buildings"])


def test_xml_reads_like_pbf(monaco_pbf, monaco_layers, tmp_path):
    xml = tmp_path / "monaco.osm"
    _to_xml(monaco_pbf, xml)
    from_xml = read_osm_layers(xml, LAYERS)
    for name, gdf in monaco_layers.items():
        other = from_xml[name]
        assert len(other) == len(gdf)
        assert _keys(other) == _keys(gdf)
        assert other.attrs["unbuildable"] == gdf.attrs["unbuildable"]
        a = gdf.sort_values(["osm_type", "osm_id"]).geometry.values
        b = other.sort_values(["osm_type", "osm_id"]).geometry.values
        assert shapely.equals_exact(a, b, tolerance=1e-9).all()


def test_unbuildable_and_degenerate(tmp_path):
    xml = tmp_path / "tiny.osm"
    xml.write_text(
        """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="test">
  <node id="1" lat="0.1" lon="0.1"/>
  <node id="2" lat="0.1" lon="0.2"/>
  <node id="3" lat="0.2" lon="0.2"><tag k="amenity" v="school"/></node>
  <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="1"/><tag k="building" v="yes"/></way>
  <way id="11"><nd ref="1"/><nd ref="99"/><tag k="building" v="yes"/></way>
  <way id="12"><nd ref="1"/><nd ref="2"/><nd ref="1"/><tag k="building" v="yes"/></way>
  <way id="13"><nd ref="1"/><nd ref="2"/><nd ref="3"/><tag k="building" v="yes"/></way>
  <relation id="20"><member type="way" ref="98" role="outer"/>
    <tag k="type" v="multipolygon"/><tag k="building" v="yes"/></relation>
</osm>
""")
    b = read_osm_layers(xml, {"b": {"building": True}})["b"]
    assert dict(zip(b["osm_id"], b.geom_type)) == {10: "Polygon", 13: "LineString"}
    assert sorted(b.attrs["unbuildable_ids"]) == [("relation", 20), ("way", 11), ("way", 12)]
    assert b.attrs["unbuildable"] == 3


# --------------------------------------------------------------------------- highways


def test_read_highways(monaco_pbf, helsinki_pbf):
    w = read_osm_highways(monaco_pbf)
    assert w.n_ways == 2852 and w.n_skipped == 0
    assert w.node_offsets[0] == 0 and w.node_offsets[-1] == w.node_ids.size
    assert (np.diff(w.node_offsets) >= 2).all()
    assert w.node_ids.size == w.node_lon.size == w.node_lat.size == 16266
    assert all("highway" in t for t in w.tags)
    assert set().union(*w.tags) <= {
        "highway", "name", "oneway", "junction", "lanes", "lanes:forward", "lanes:backward",
        "maxspeed", "bridge", "tunnel", "access", "motor_vehicle", "motorcar", "service",
        "area", "ref"}
    h = read_osm_highways(helsinki_pbf)
    # this extract was cut without completing ways: those are counted, not read
    assert h.n_ways == 2459 and h.n_skipped == 191


def test_read_highways_bbox(monaco_pbf):
    w = read_osm_highways(monaco_pbf, bbox_lonlat=SMALL_BBOX)
    assert w.n_ways == 939
    minlon, minlat, maxlon, maxlat = SMALL_BBOX
    inside = ((w.node_lon >= minlon) & (w.node_lon <= maxlon)
              & (w.node_lat >= minlat) & (w.node_lat <= maxlat))
    assert np.logical_or.reduceat(inside, w.node_offsets[:-1]).all()
    assert not inside.all()  # ways crossing the edge keep their outside nodes


def test_header(monaco_pbf, helsinki_pbf):
    h = osm_header(monaco_pbf)
    assert h["timestamp"] == "2023-12-26T21:21:22Z"
    assert h["generator"] == "osmium/1.14.0"
    assert h["bbox_lonlat"] == pytest.approx((7.409205, 43.72335, 7.448637, 43.75169))
    assert osm_header(helsinki_pbf)["timestamp"] is None


# --------------------------------------------------------------------------- crop


def test_crop_keeps_complete_ways(monaco_pbf, tmp_path):
    dst = tmp_path / "crop.osm.pbf"
    counts = crop_osm(monaco_pbf, dst, SMALL_BBOX)
    assert counts == {"nodes": 10004, "ways": 1506, "relations": 178, "nodes_inside": 8748}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crop.osm.pbf"]

    node_ids, way_refs, n_ways, n_rel = set(), set(), 0, 0
    for obj in osmium.FileProcessor(str(dst)):
        if obj.is_node():
            node_ids.add(obj.id)
        elif obj.is_way():
            n_ways += 1
            way_refs.update(n.ref for n in obj.nodes)
        else:
            n_rel += 1
    assert (len(node_ids), n_ways, n_rel) == (10004, 1506, 178)
    assert way_refs <= node_ids

    assert osm_header(dst)["bbox_lonlat"] == pytest.approx(SMALL_BBOX)
    assert osm_header(dst)["timestamp"] == "2023-12-26T21:21:22Z"
    b = read_osm_layers(dst, {"b": {"building": True}})["b"]
    full = read_osm_layers(monaco_pbf, {"b": {"building": True}}, bbox_lonlat=SMALL_BBOX)["b"]
    assert _keys(full.loc[full.osm_type == "way"]) <= _keys(b)

    with pytest.raises(InputError, match="already exists"):
        crop_osm(monaco_pbf, dst, SMALL_BBOX)
    assert crop_osm(monaco_pbf, dst, SMALL_BBOX, overwrite=True)["ways"] == 1506


def test_crop_bad_bbox(monaco_pbf, tmp_path):
    with pytest.raises(InputError, match="bbox"):
        crop_osm(monaco_pbf, tmp_path / "x.osm.pbf", (7.43, 43.73, 7.42, 43.74))


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.osm.pbf"
    with pytest.raises(InputError, match="not found") as err:
        read_osm_layers(path, {"b": {"building": True}})
    assert str(path) in str(err.value)
    with pytest.raises(InputError):
        read_osm_highways(path)
    with pytest.raises(InputError):
        osm_header(path)


@pytest.mark.parametrize("name", ["garbage.osm.pbf", "garbage.osm", "garbage.txt"])
def test_garbage_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("this is not OpenStreetMap data\n")
    for call in (lambda: read_osm_layers(path, {"b": {"building": True}}),
                 lambda: read_osm_highways(path), lambda: osm_header(path),
                 lambda: crop_osm(path, tmp_path / "out.osm.pbf", SMALL_BBOX)):
        with pytest.raises(InputError, match="OpenStreetMap") as err:
            call()
        assert str(path) in str(err.value)


def test_bad_tag_filter(monaco_pbf):
    with pytest.raises(InputError, match="tag filter") as err:
        read_osm_layers(monaco_pbf, {"b": {"building": 3}})
    assert "b.osm_tags.building" in str(err.value)
    with pytest.raises(InputError):
        read_osm_layers(monaco_pbf, {"b": {}})
