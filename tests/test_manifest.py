"""Bad city manifests and inputs: one clear error naming file, line and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from twin.errors import InputError
from twin.geo.manifest import read_manifest


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "city.toml"
    path.write_text(text)
    return path


@pytest.fixture()
def monaco_copy(tmp_path: Path, gis_data: Path) -> Path:
    dst = tmp_path / "monaco"
    shutil.copytree(gis_data / "monaco", dst)
    return dst


def test_sample_manifests_are_valid(gis_data: Path) -> None:
    for area in ("monaco", "helsinki", "carlisle"):
        manifest = read_manifest(gis_data / area)
        assert manifest.city.name
        assert manifest.layers


def test_missing_manifest_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        read_manifest(tmp_path)
    assert str(tmp_path) in str(err.value)
    assert "city.toml" in str(err.value)


def test_typo_is_reported_with_line_and_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path / "c", """
[city]
name = "X"
crs = "utm"

[[layers]]
name = "Roads"
role = "roads"
sorce = "x.osm.pbf"
""")
    with pytest.raises(InputError) as err:
        read_manifest(path)
    text = str(err.value)
    assert "line 9: layers[0].sorce" in text
    assert "did you mean 'source'" in text
    assert "line 6" in text or "layers[0].source" in text  # the missing source is reported too
    assert len(err.value.problems) == 2


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path / "c", """
[city]
name = "X"
crs = "EPSG:4326"
terrain = "dem"

[[layers]]
name = "Roads"
role = "roads"
source = "missing.osm.pbf"

[[layers]]
name = "Roads"
role = "dem"
source = "roads.geojson"
opacity = 1.5
""")
    with pytest.raises(InputError) as err:
        read_manifest(path)
    problems = err.value.problems
    # opacity out of range is a schema error and stops before the semantic checks
    assert any("layers[1].opacity" in p.where for p in problems)
    path.write_text(path.read_text().replace("opacity = 1.5\n", ""))
    with pytest.raises(InputError) as err:
        read_manifest(path)
    wheres = [p.where for p in err.value.problems]
    messages = " | ".join(p.message for p in err.value.problems)
    assert any("city.crs" in w for w in wheres) and "not a projected CRS" in messages
    assert any("layers[0].source" in w for w in wheres) and "not found" in messages
    assert any("layers[0].osm_tags" in w for w in wheres)
    assert any("layers[1].name" in w for w in wheres) and "unique" in messages
    assert any("layers[1].source" in w for w in wheres) and "needs a raster" in messages
    assert all(p.source == str(path) for p in err.value.problems)


def test_unknown_crs(monaco_copy: Path) -> None:
    path = monaco_copy / "city.toml"
    path.write_text(path.read_text().replace('crs = "utm"', 'crs = "EPSG:999999"'))
    with pytest.raises(InputError) as err:
        read_manifest(path)
    assert "city.crs" in str(err.value) and "unknown CRS" in str(err.value)


def test_bad_toml_syntax(tmp_path: Path) -> None:
    path = _write(tmp_path / "c", "[city\nname = 1\n")
    with pytest.raises(InputError) as err:
        read_manifest(path)
    assert "not valid TOML" in str(err.value) and str(path) in str(err.value)
