"""`twin city info` / `twin city init`: output on the samples and clear errors on bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin.cli.main import main


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def monaco_copy(tmp_path: Path, gis_data: Path) -> Path:
    dst = tmp_path / "monaco"
    shutil.copytree(gis_data / "monaco", dst)
    return dst


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_info_prints_layers_counts_crs_classes_attribution(capsys, gis_data: Path) -> None:
    code, out, err = _run(capsys, "city", "info", str(gis_data / "monaco"))
    assert code == 0, err
    assert "CRS: EPSG:32632 (WGS 84 / UTM zone 32N)" in out
    assert "Terrain: flat" in out
    assert any(line.split()[:4] == ["Buildings", "buildings", "vector", "1,283"] for line in out.splitlines())
    assert "Road network: 647 nodes, 1,040 directed edges" in out
    assert "城镇村及工矿用地" in out and "Transport land" in out
    assert "closure error" in out
    assert "© OpenStreetMap contributors" in out
    assert "Extent (lon/lat): 7.409" in out


def test_info_carlisle_has_terrain(capsys, gis_data: Path) -> None:
    code, out, _ = _run(capsys, "city", "info", str(gis_data / "carlisle"))
    assert code == 0
    assert "Terrain: DEM 1813 x 1855 cells of 5 m" in out
    assert "Buildings: 12,031 (height from: source_data 12,031)" in out
    assert "Rain series: 322 rows, 67 zone column(s)" in out


def _assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("twin: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def test_missing_folder(capsys, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "city", "info", str(tmp_path / "nowhere"))
    _assert_user_error(code, err, str(tmp_path / "nowhere"), "city.toml")


def test_manifest_typo(capsys, monaco_copy: Path) -> None:
    _edit(monaco_copy / "city.toml", 'default_land_class = "20"', 'default_land_clas = "20"')
    code, _, err = _run(capsys, "city", "info", str(monaco_copy))
    _assert_user_error(code, err, str(monaco_copy / "city.toml"), "city.default_land_clas",
                       "did you mean 'default_land_class'")


def test_wrong_crs(capsys, monaco_copy: Path) -> None:
    _edit(monaco_copy / "city.toml", 'crs = "utm"', 'crs = "EPSG:4326"')
    code, _, err = _run(capsys, "city", "info", str(monaco_copy))
    _assert_user_error(code, err, "city.crs", "not a projected CRS")


def test_missing_source_file(capsys, monaco_copy: Path) -> None:
    (monaco_copy / "boundary.geojson").unlink()
    code, _, err = _run(capsys, "city", "info", str(monaco_copy))
    _assert_user_error(code, err, "layers[0].source", "'boundary.geojson' not found")


def test_unreadable_osm_file(capsys, monaco_copy: Path) -> None:
    (monaco_copy / "monaco.osm.pbf").write_bytes(b"this is not an OSM file\n" * 10)
    code, _, err = _run(capsys, "city", "info", str(monaco_copy))
    _assert_user_error(code, err, str(monaco_copy / "monaco.osm.pbf"))


def test_unreadable_raster(capsys, gis_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "carlisle"
    shutil.copytree(gis_data / "carlisle", folder)
    (folder / "dem.tif").write_text("not a tiff")
    code, _, err = _run(capsys, "city", "info", str(folder))
    _assert_user_error(code, err, str(folder / "dem.tif"), "not a readable raster")


def test_vector_without_crs(capsys, gis_data: Path, tmp_path: Path) -> None:
    import geopandas as gpd

    folder = tmp_path / "carlisle"
    shutil.copytree(gis_data / "carlisle", folder)
    schools = gpd.read_file(folder / "schools.gpkg")
    schools.to_file(folder / "schools.shp")
    (folder / "schools.prj").unlink()
    _edit(folder / "city.toml", 'source = "schools.gpkg"', 'source = "schools.shp"')
    text = (folder / "city.toml").read_text().replace('layer = "schools"\n', "")
    (folder / "city.toml").write_text(text)
    code, _, err = _run(capsys, "city", "info", str(folder))
    _assert_user_error(code, err, str(folder / "schools.shp"), "no coordinate reference system")


def test_empty_layer(capsys, monaco_copy: Path) -> None:
    _edit(monaco_copy / "city.toml", "osm_tags = { building = true }", 'osm_tags = { building = ["no_such_type"] }')
    code, _, err = _run(capsys, "city", "info", str(monaco_copy))
    _assert_user_error(code, err, str(monaco_copy / "monaco.osm.pbf"), "layer 'Buildings'", "no features")


def test_no_traceback_from_the_console_script(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "twin", "city", "info", str(tmp_path)],
                            capture_output=True, text=True, env={"TWIN_CACHE_DIR": str(tmp_path / "c"), "PATH": ""})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "city.toml" in result.stderr


def test_init_cuts_a_region_out_of_an_extract(capsys, gis_data: Path, tmp_path: Path) -> None:
    out_folder = tmp_path / "fontvieille"
    bbox = "7.411,43.725,7.422,43.733"
    code, out, err = _run(capsys, "city", "init", str(out_folder), "--osm", str(gis_data / "monaco" / "monaco.osm.pbf"),
                          "--bbox", bbox)
    assert code == 0, err
    assert (out_folder / "city.toml").exists() and (out_folder / "fontvieille.osm.pbf").exists()
    assert not list(tmp_path.glob("fontvieille.tmp-*"))
    code, out, err = _run(capsys, "city", "info", str(out_folder))
    assert code == 0, err
    assert "CRS: EPSG:32632" in out
    from twin.city.city import load_city

    city = load_city(out_folder)
    full = load_city(gis_data / "monaco")
    assert 0 < len(city.buildings) < len(full.buildings)
    assert city.network.n_edges > 0
    # The cropped file keeps complete ways: every building is a closed polygon.
    assert city.one_map.reports["Buildings"].empty_dropped == 0
    # Refuses to overwrite.
    code, _, err = _run(capsys, "city", "init", str(out_folder), "--osm", str(gis_data / "monaco" / "monaco.osm.pbf"))
    _assert_user_error(code, err, "not empty")


def test_init_rejects_a_bad_bbox(capsys, gis_data: Path, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "city", "init", str(tmp_path / "x"), "--osm", str(gis_data / "monaco" / "monaco.osm.pbf"),
                        "--bbox", "7.5,43.7,7.4")
    _assert_user_error(code, err, "--bbox", "minlon,minlat,maxlon,maxlat")
    assert not (tmp_path / "x").exists()
