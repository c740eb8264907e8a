"""Scene files (``scenes/*.toml``): what is shown, so a view can be restored.

A scene names its city folder (relative to the scene file), the layer tree's
state (order, groups, visibility, opacity, styles), the 2D extent, the 3D
vertical exaggeration and camera bookmarks.  Qt-free: the app reads and writes
scenes through this module, and so can scripts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from twin.errors import InputError, Problem
from twin.fileio import atomic_write, read_toml
from twin.geo.layers import LayerTree
from twin.geo.style import parse_style

SCENE_FORMAT = 1


@dataclass
class Bookmark:
    """A named 3D camera: position, focal point and view-up vector in project CRS metres."""

    name: str
    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    view_up: tuple[float, float, float] = (0.0, 0.0, 1.0)


@dataclass
class Scene:
    name: str
    city: Path
    tree: dict[str, Any] = field(default_factory=dict)
    extent_2d: tuple[float, float, float, float] | None = None
    z_scale: float = 1.0
    camera: Bookmark | None = None
    bookmarks: list[Bookmark] = field(default_factory=list)


def _bookmark_dict(b: Bookmark) -> dict[str, Any]:
    return {"name": b.name, "position": list(b.position), "focal_point": list(b.focal_point), "view_up": list(b.view_up)}


def save_scene(scene: Scene, path: str | Path) -> Path:
    """Write the scene as TOML (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        city = os.path.relpath(Path(scene.city).resolve(), path.parent.resolve())
    except ValueError:  # another drive
        city = str(Path(scene.city).resolve())
    data: dict[str, Any] = {"scene": {"format": SCENE_FORMAT, "name": scene.name, "city": city, "z_scale": scene.z_scale}}
    if scene.extent_2d is not None:
        data["scene"]["extent_2d"] = [float(v) for v in scene.extent_2d]
    if scene.camera is not None:
        data["camera"] = _bookmark_dict(scene.camera)
    if scene.bookmarks:
        data["bookmarks"] = [_bookmark_dict(b) for b in scene.bookmarks]
    # Layers are matched by name when a scene is applied; their source paths
    # belong to the city manifest and would tie the scene to one machine.
    tree = dict(scene.tree)
    tree["layers"] = [{k: v for k, v in record.items() if k != "source"} for record in scene.tree.get("layers", [])]
    data["tree"] = _drop_none(tree)
    with atomic_write(path, binary=True) as fh:
        tomli_w.dump(data, fh)
    return path


def _drop_none(value: Any) -> Any:
    """TOML has no null: leave out keys whose value is None."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _read_bookmark(raw: Any, where: str, source: str, problems: list[Problem]) -> Bookmark | None:
    if not isinstance(raw, dict):
        problems.append(Problem(source, where, "must be a table with name, position, focal_point, view_up"))
        return None
    try:
        vecs = {k: tuple(float(v) for v in raw[k]) for k in ("position", "focal_point")}
        up = tuple(float(v) for v in raw.get("view_up", (0, 0, 1)))
        if any(len(v) != 3 for v in (*vecs.values(), up)):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        problems.append(Problem(source, where, "position, focal_point and view_up must be three numbers each"))
        return None
    return Bookmark(str(raw.get("name", "")), vecs["position"], vecs["focal_point"], up)  # type: ignore[arg-type]


def read_scene(path: str | Path) -> Scene:
    """Read a scene file, listing every problem at once."""
    path = Path(path)
    data = read_toml(path, what="scene file")
    source = str(path)
    problems: list[Problem] = []
    head = data.get("scene")
    if not isinstance(head, dict):
        raise InputError(Problem(source, "scene", "missing [scene] table with name and city"))
    for key in data:
        if key not in ("scene", "camera", "bookmarks", "tree"):
            problems.append(Problem(source, key, "unknown table; allowed: scene, camera, bookmarks, tree"))
    for key in head:
        if key not in ("format", "name", "city", "z_scale", "extent_2d"):
            problems.append(Problem(source, f"scene.{key}", "unknown key; allowed: format, name, city, z_scale, extent_2d"))
    if head.get("format", SCENE_FORMAT) != SCENE_FORMAT:
        problems.append(Problem(source, "scene.format", f"unsupported format {head.get('format')!r}"))
    city = path.parent / str(head.get("city", ""))
    if "city" not in head:
        problems.append(Problem(source, "scene.city", "required: the city folder, relative to this file"))
    elif not (city / "city.toml").exists():
        problems.append(Problem(source, "scene.city", f"no city.toml in {city.resolve()}"))
    z_scale = head.get("z_scale", 1.0)
    if not isinstance(z_scale, (int, float)) or not 0.1 <= float(z_scale) <= 20:
        problems.append(Problem(source, "scene.z_scale", "must be a number from 0.1 to 20"))
        z_scale = 1.0
    extent = head.get("extent_2d")
    if extent is not None and (not isinstance(extent, list) or len(extent) != 4 or extent[0] >= extent[2] or extent[1] >= extent[3]):
        problems.append(Problem(source, "scene.extent_2d", "must be [xmin, ymin, xmax, ymax] with min < max"))
        extent = None
    camera = _read_bookmark(data["camera"], "camera", source, problems) if "camera" in data else None
    bookmarks = []
    for i, raw in enumerate(data.get("bookmarks", [])):
        mark = _read_bookmark(raw, f"bookmarks[{i}]", source, problems)
        if mark is not None:
            bookmarks.append(mark)
    tree = data.get("tree", {})
    if tree:
        try:
            LayerTree.from_dict(tree, source=f"{source}: tree")
        except InputError as exc:
            problems += exc.problems
    if problems:
        raise InputError(problems)
    return Scene(name=str(head.get("name", path.stem)), city=city.resolve(), tree=tree,
                 extent_2d=tuple(extent) if extent else None, z_scale=float(z_scale), camera=camera,
                 bookmarks=bookmarks)


def apply_tree_state(tree: LayerTree, state: dict[str, Any]) -> list[str]:
    """Set order, visibility, opacity and styles of a loaded tree from saved state.

    Returns a note for each saved layer the city no longer has (nothing is
    silently skipped).
    """
    notes: list[str] = []
    next_index: dict[str | None, int] = {}
    for record in state.get("layers", []):
        name = record.get("name")
        layer = tree.find(name) if name else None
        if layer is None:
            notes.append(f"layer {name!r} in the scene is not in the city; skipped")
            continue
        if "visible" in record:
            layer.visible = bool(record["visible"])
        if "opacity" in record:
            layer.opacity = float(record["opacity"])
        if record.get("style"):
            layer.style = parse_style(record["style"])
        group = record.get("group")
        position = next_index.get(group, 0)
        tree.move(name, position, group=group)
        next_index[group] = position + 1
    for record in sorted(state.get("groups", []), key=lambda g: g.get("index", 0)):
        group = tree.group(record.get("name", ""))
        if group is None:
            continue
        group.visible = bool(record.get("visible", group.visible))
        if "index" in record:
            tree.move(group.name, int(record["index"]), group=None, kind="group")
    return notes
