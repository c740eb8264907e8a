"""Scene files: save what is shown, restore it onto a freshly loaded city."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.city.city import load_city
from twin.errors import InputError
from twin.geo.scene_file import Bookmark, Scene, apply_tree_state, read_scene, save_scene
from twin.geo.style import GraduatedStyle


def test_round_trip_restores_order_visibility_opacity_style(gis_data: Path, tmp_path: Path) -> None:
    city = load_city(gis_data / "monaco", cache_root=tmp_path / "cache")
    tree = city.one_map.tree
    tree.find("Roads").visible = False
    tree.find("Buildings").opacity = 0.4
    tree.find("Buildings").style = GraduatedStyle(field="height_m", ramp="viridis", n_classes=4)
    tree.move("Land", 0, kind="group")
    tree.move("Natural", 1, group="Land")
    saved = tree.to_dict()
    camera = Bookmark("oblique", (373000.0, 4842000.0, 900.0), (373100.0, 4844000.0, 0.0))
    path = save_scene(Scene(name="Monaco test", city=gis_data / "monaco", tree=saved, extent_2d=(1, 2, 3, 4),
                            z_scale=2.0, camera=camera, bookmarks=[camera]), tmp_path / "scenes" / "t.toml")
    assert not list(path.parent.glob("*.tmp"))
    scene = read_scene(path)
    assert scene.city == (gis_data / "monaco").resolve()
    assert scene.extent_2d == (1, 2, 3, 4) and scene.z_scale == 2.0
    assert scene.camera == camera and scene.bookmarks == [camera]

    fresh = load_city(gis_data / "monaco", cache_root=tmp_path / "cache").one_map.tree
    assert fresh.to_dict() != saved
    assert apply_tree_state(fresh, scene.tree) == []
    assert fresh.to_dict() == saved
    assert [layer.name for layer in fresh.layers][:2] == ["Land use", "Natural"]


def test_unknown_layers_are_reported_not_dropped_silently(gis_data: Path, tmp_path: Path) -> None:
    tree = load_city(gis_data / "monaco", cache_root=tmp_path / "cache").one_map.tree
    state = tree.to_dict()
    state["layers"].append({**state["layers"][0], "name": "Metro lines"})
    notes = apply_tree_state(tree, state)
    assert notes == ["layer 'Metro lines' in the scene is not in the city; skipped"]


def test_bad_scene_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[scene]\nname = "x"\ncity = "nowhere"\nz_scale = 100\nzoom = 3\n\n'
                    '[camera]\nposition = [1, 2]\nfocal_point = [0, 0, 0]\n')
    with pytest.raises(InputError) as err:
        read_scene(path)
    wheres = {p.where for p in err.value.problems}
    assert {"scene.city", "scene.z_scale", "scene.zoom", "camera"} <= wheres
    assert all(p.source == str(path) for p in err.value.problems)


def test_sample_scenes_open(gis_data: Path) -> None:
    scenes = sorted((gis_data.parent / "scenes").glob("*.toml"))
    assert {p.stem for p in scenes} >= {"monaco", "helsinki", "carlisle"}
    for path in scenes:
        scene = read_scene(path)
        tree = load_city(scene.city).one_map.tree
        assert apply_tree_state(tree, scene.tree) == []
