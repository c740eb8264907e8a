"""Layer tree, layer models and styles: edits with events, TOML round trip, validation, colours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.errors import InputError
from twin.geo.layers import Layer, LayerGroup, LayerTree
from twin.geo.style import (
    CategorisedStyle,
    GraduatedStyle,
    SingleStyle,
    auto_breaks,
    auto_categories,
    class_index,
    colours_for,
    parse_colour,
    parse_style,
    ramp_colours,
)


class Recorder:
    """Collects (signal, args) of every emission it is connected to."""

    def __init__(self, tree: LayerTree):
        self.events: list[tuple] = []
        for name in ("inserted", "removed", "moved", "changed"):
            getattr(tree, name).connect(lambda *args, _n=name: self.events.append((_n, *args)))

    def names(self) -> list[tuple]:
        return [(e[0], e[1].name, *e[2:]) for e in self.events]


def make_tree() -> LayerTree:
    tree = LayerTree()
    tree.add(Layer(name="Roads", role="roads", source="monaco.osm.pbf"), group="Transport")
    tree.add(Layer(name="Buildings", role="buildings", source="monaco.osm.pbf"))
    tree.add(Layer(name="Terrain", role="dem", kind="raster", source="dem.tif",
                   style=GraduatedStyle(field="elevation", ramp="terrain", method="quantile", n_classes=7)))
    tree.add(Layer(name="Land classes", role="land_classes",
                   style=CategorisedStyle(field="code", categories={"03": "#2f8a3b", "11": "#4a90d9"})),
             group="Land", index=0)
    return tree


# ----------------------------------------------------------------------------- tree edits


def test_add_builds_draw_order_and_groups():
    tree = make_tree()
    assert [item.name for item in tree.items] == ["Transport", "Buildings", "Terrain", "Land"]
    assert [layer.name for layer in tree] == ["Roads", "Buildings", "Terrain", "Land classes"]
    assert tree.find("Roads").group == "Transport"
    assert tree.index_of("Land classes") == ("Land", 0)
    assert isinstance(tree.group("Land"), LayerGroup) and tree.find("Land") is None
    assert len(tree) == 4 and "Terrain" in tree and "Nope" not in tree


def test_events_for_add_move_remove():
    tree = LayerTree()
    rec = Recorder(tree)
    tree.add(Layer(name="A"))
    tree.add(Layer(name="B"), index=0)
    tree.add(Layer(name="C"), group="G")
    assert rec.names() == [("inserted", "A", None, 0), ("inserted", "B", None, 0),
                           ("inserted", "G", None, 2), ("inserted", "C", "G", 0)]
    rec.events.clear()

    tree.move("A", 0)
    assert [i.name for i in tree.items] == ["A", "B", "G"]
    tree.move("B", 0, group="G")
    assert [layer.name for layer in tree] == ["A", "B", "C"]
    assert tree.find("B").group == "G"
    tree.move("G", 0)
    assert [i.name for i in tree.items] == ["G", "A"]
    moves = [e for e in rec.names() if e[0] == "moved"]
    assert moves == [("moved", "A", None, 1, None, 0), ("moved", "B", None, 1, "G", 0),
                     ("moved", "G", None, 1, None, 0)]
    rec.events.clear()

    removed = tree.remove("G")
    assert removed.name == "G" and [layer.name for layer in tree] == ["A"]
    assert rec.names() == [("removed", "C", "G", 1), ("removed", "B", "G", 0), ("removed", "G", None, 0)]
    assert tree.find("B") is None


def test_changed_relays_layer_and_style_edits():
    tree = make_tree()
    rec = Recorder(tree)
    layer = tree.find("Roads")
    layer.visible = False
    layer.opacity = 0.5
    layer.name = "Streets"
    layer.style = SingleStyle(fill="#ff0000")
    layer.style.stroke_width = 2.0  # an edit inside the style is a style change too
    tree.group("Land").expanded = False
    fields = [(e[1], e[2]) for e in rec.names() if e[0] == "changed"]
    assert fields == [("Streets", "visible"), ("Streets", "opacity"), ("Streets", "name"), ("Streets", "style"),
                      ("Streets", "style"), ("Land", "expanded")]
    assert tree.find("Streets") is layer
    # A removed layer no longer reports to the tree.
    tree.remove("Streets")
    rec.events.clear()
    layer.visible = True
    assert rec.events == []


def test_layer_events_direct():
    layer = Layer(name="L")
    seen = []
    layer.events.opacity.connect(seen.append)
    layer.events.style.connect(lambda s: seen.append(s.kind))
    layer.opacity = 0.25
    layer.style = GraduatedStyle(field="depth_m")
    layer.style.ramp = "blues"
    assert seen == [0.25, "graduated", "graduated"]


def test_unique_names_and_bad_edits():
    tree = make_tree()
    with pytest.raises(InputError, match="unique"):
        tree.add(Layer(name="Roads"))
    # Layers and groups have separate names, as in QGIS: a layer may share its group's name.
    tree.add(Layer(name="Transport"), group="Transport")
    assert tree.find("Transport").group == "Transport" and tree.group("Transport") is not None
    tree.remove("Transport")
    assert tree.group("Transport") is not None and tree.find("Transport") is None
    with pytest.raises(InputError, match="unique"):
        tree.find("Buildings").name = "Terrain"
    assert tree.find("Buildings") is not None
    with pytest.raises(InputError, match="no layer or group"):
        tree.remove("Nope")
    with pytest.raises(InputError, match="do not nest"):
        tree.move("Land", 0, group="Transport")
    tree.add(Layer(name="X"), group="Buildings")  # a new group beside the layer "Buildings"
    assert tree.group("Buildings").children[0].name == "X" and tree.find("Buildings").group != "Buildings"
    with pytest.raises(ValueError):
        tree.add(tree.find("Terrain"))


def test_setting_group_on_a_layer_moves_it():
    tree = make_tree()
    tree.find("Buildings").group = "Land"
    assert tree.index_of("Buildings") == ("Land", 1)
    tree.find("Buildings").group = None
    assert tree.index_of("Buildings") == (None, len(tree.items) - 1)


def test_visible_layers_respect_groups():
    tree = make_tree()
    tree.find("Buildings").visible = False
    tree.group("Land").visible = False
    assert [layer.name for layer in tree.visible_layers()] == ["Roads", "Terrain"]


def test_layer_validation():
    with pytest.raises(Exception):
        Layer(name="L", opacity=1.5)
    layer = Layer(name="L")
    with pytest.raises(Exception):
        layer.opacity = -0.1
    with pytest.raises(Exception):
        Layer(name="L", role="bogus")
    with pytest.raises(Exception):
        Layer(name="   ")


def test_layer_data_is_not_serialised_and_colours():
    layer = Layer(name="Depth", style=GraduatedStyle(field="depth", breaks=[0, 10, 20]))
    layer.data = pd.DataFrame({"depth": [5.0, 15.0, np.nan]})
    assert "data" not in layer.model_dump()
    rgba = layer.colours()
    assert rgba.shape == (3, 4) and rgba[2, 3] == 0
    grid = Layer(name="Grid", kind="raster", style=SingleStyle(fill="#102030"))
    grid.data = np.zeros((2, 3))
    assert grid.colours().shape == (2, 3, 4)


# ----------------------------------------------------------------------------- TOML


def test_toml_round_trip(tmp_path):
    tree = make_tree()
    tree.add_group("Empty", index=1)
    tree.find("Roads").opacity = 0.4
    tree.find("Buildings").visible = False
    tree.group("Land").expanded = False
    tree.find("Roads").metadata["features"] = 2829
    path = tmp_path / "layers.toml"
    tree.to_toml(path)
    back = LayerTree.from_toml(path)
    assert back.to_dict() == tree.to_dict()
    assert [i.name for i in back.items] == ["Transport", "Empty", "Buildings", "Terrain", "Land"]
    assert back.find("Terrain").style == tree.find("Terrain").style
    assert back.find("Roads").metadata == {}
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file is gone


def test_toml_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "layers.toml"
    make_tree().to_toml(path)
    before = path.read_text()

    def fail(*_):
        raise OSError("disk full")

    monkeypatch.setattr("twin.fileio.os.replace", fail)
    tree = make_tree()
    tree.find("Roads").visible = False
    with pytest.raises(OSError):
        tree.to_toml(path)
    assert path.read_text() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_toml_lists_every_problem(tmp_path):
    path = tmp_path / "layers.toml"
    path.write_text(
        """
version = 1
colour = "red"

[[groups]]
name = "G"
index = 7

[[layers]]
name = "A"

[[layers]]
name = "B"
opacity = 1.5

[[layers]]
role = "roads"

[[layers]]
name = "D"
[layers.style]
kind = "hatched"

[[layers]]
name = "E"
[layers.style]
kind = "graduated"
field = "depth"
ramp = "rainbow"
breaks = [3, 1]

[[layers]]
name = "A"
""",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as err:
        LayerTree.from_toml(path)
    wheres = [p.where for p in err.value.problems]
    assert "colour" in wheres
    assert "layers[1].opacity" in wheres
    assert "layers[2].name" in wheres
    assert "layers[3].style.kind" in wheres
    assert "layers[4].style.ramp" in wheres
    assert "layers[4].style.breaks" in wheres
    assert "layers[5].name" in wheres  # duplicate of layers[0]
    assert "groups[0].index" in wheres
    assert all(p.source == str(path) for p in err.value.problems)
    assert len(err.value.problems) == 8


def test_unreadable_toml(tmp_path):
    path = tmp_path / "layers.toml"
    path.write_text("[[layers]\nname = ", encoding="utf-8")
    with pytest.raises(InputError, match="not valid TOML"):
        LayerTree.from_toml(path)
    with pytest.raises(InputError, match="not found"):
        LayerTree.from_toml(tmp_path / "missing.toml")


# ----------------------------------------------------------------------------- styles


def test_graduated_colours_by_breaks():
    style = GraduatedStyle(field="v", breaks=[0, 10, 20], ramp="blues")
    rgba = colours_for(style, [5, 15, 10, 20, 25, -1, np.nan])
    low, high = ramp_colours("blues", 2)
    assert (rgba[0] == low).all() and (rgba[1] == high).all()
    assert (rgba[2] == high).all() and (rgba[3] == high).all()  # edges: [0,10) [10,20]
    assert (rgba[4] == high).all() and (rgba[5] == low).all()    # outside: nearest end class
    assert rgba[6].tolist() == [0, 0, 0, 0]                      # NaN: nodata
    assert class_index([5, 15], [0, 10, 20]).tolist() == [0, 1]
    assert style.colours() == ["#f7fbff", "#08306b"]


def test_graduated_auto_breaks():
    values = np.arange(101, dtype=float)
    assert auto_breaks(values, "equal", 4).tolist() == [0, 25, 50, 75, 100]
    assert auto_breaks([1, 1, 1, 2, 9], "quantile", 4).tolist() == [1, 2, 9]  # repeated edges merged
    assert auto_breaks([np.nan], "equal", 3).tolist() == [0, 1]
    style = GraduatedStyle(field="v", method="equal", n_classes=4, ramp="viridis")
    rgba = colours_for(style, values)
    first, last = ramp_colours("viridis", 4)[[0, -1]]
    assert (rgba[0] == first).all() and (rgba[-1] == last).all()
    with pytest.raises(ValueError):
        auto_breaks(values, "jenks", 3)


def test_categorised_colours_and_default():
    style = CategorisedStyle(field="code", categories={"03": "#2F8A3B", "1": "#ff000080"}, default="#cccccc")
    rgba = colours_for(style, pd.Series(["03", "99", None]))
    assert rgba.tolist() == [[0x2F, 0x8A, 0x3B, 255], [204, 204, 204, 255], [204, 204, 204, 255]]
    assert colours_for(style, np.array([1.0, 2.0]))[0].tolist() == [255, 0, 0, 128]  # 1.0 matches "1"
    assert style.categories["03"] == "#2f8a3b"  # colours are normalised to lower case
    assert auto_categories([3, 1, 1]) == {"1": "#1f77b4", "3": "#ff7f0e"}


def test_single_colours():
    rgba = colours_for(SingleStyle(fill="#102030"), [1, 2, 3])
    assert rgba.shape == (3, 4) and rgba.dtype == np.uint8 and rgba[0].tolist() == [16, 32, 48, 255]
    assert colours_for(SingleStyle(), n=0).shape == (0, 4)


def test_ramps_and_colour_parsing():
    assert parse_colour("#ff000080") == (255, 0, 0, 128)
    ramp = ramp_colours("viridis", 10)
    assert ramp[0].tolist() == [0x44, 0x01, 0x54, 255] and ramp[-1].tolist() == [0xFD, 0xE7, 0x25, 255]
    assert (ramp_colours("viridis", 3, reverse=True)[0] == ramp[-1]).all()
    assert len(ramp_colours("tab10", 12)) == 12
    with pytest.raises(ValueError):
        ramp_colours("rainbow", 3)


def test_parse_style_errors_are_gathered():
    style = parse_style({"kind": "categorised", "field": "code", "categories": {"01": "#f2e16b"}})
    assert isinstance(style, CategorisedStyle)
    with pytest.raises(InputError) as err:
        parse_style({"kind": "single", "fill": "red", "stroke_width": -1, "size": 3})
    assert sorted(p.where for p in err.value.problems) == ["style.fill", "style.size", "style.stroke_width"]


def test_add_uses_the_layers_own_group():
    tree = LayerTree()
    tree.add(Layer(name="Roads", role="roads", group="Transport"))
    assert tree.index_of("Roads") == ("Transport", 0) and tree.group("Transport") is not None
