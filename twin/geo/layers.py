"""The layer tree: what the one map shows, in which order and how (no Qt).

A :class:`Layer` is an evented model (name, role, source, visibility, opacity,
style...) holding its loaded data in a non-serialised ``data`` attribute.
:class:`LayerTree` keeps layers and one level of :class:`LayerGroup` in draw
order — the first item is drawn on top, as in the QGIS layers panel — and
emits ``inserted``, ``removed``, ``moved`` and ``changed`` so views can follow
it.  The tree's state (order, groups, visibility, opacity, styles; never the
data) round-trips through TOML.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import tomli_w
from psygnal import EventedModel, Signal
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from twin.fileio import atomic_write, read_toml
from twin.errors import InputError, Problem
from twin.geo.style import SingleStyle, Style, colours_for, style_to_dict, validation_problems

#: What a layer is to the City (the manifest roles), plus derived land classes and model results.
ROLES = (
    "boundary", "roads", "buildings", "landuse", "water", "natural", "pois", "shelters", "dem", "landcover",
    "rain_zones", "rain", "inflows", "land_classes", "result", "other",
)
LayerKind = Literal["vector", "raster", "table", "mesh"]
TREE_FORMAT_VERSION = 1
_TREE_KEYS = ("version", "groups", "layers")


class Layer(EventedModel):
    """One map layer; ``events.<field>`` fire when a field changes (also when its style is edited).

    ``opacity`` is 0 (transparent) .. 1 (opaque); ``metadata`` holds what the
    loader found (feature count, extent, geometry repairs) and is not saved with
    the tree; ``data`` is the loaded GeoDataFrame / Grid / DataFrame.
    """

    model_config = {"extra": "forbid", "validate_assignment": True, "allow_property_setters": True}

    name: str = Field(min_length=1)
    role: str = "other"
    source: str = ""
    kind: LayerKind = "vector"
    crs: str = ""
    visible: bool = True
    opacity: float = Field(default=1.0, ge=0.0, le=1.0)
    style: Style = Field(default_factory=SingleStyle)
    group: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    _data: Any = PrivateAttr(default=None)
    _tree: Any = PrivateAttr(default=None)
    _watched_style: Any = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._watch_style()
        self.events.style.connect(self._watch_style)

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a layer needs a name")
        return value

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in ROLES:
            raise ValueError(f"unknown role {value!r}; use one of {', '.join(ROLES)}")
        return value

    @property
    def data(self) -> Any:
        """The loaded data (GeoDataFrame, Grid or DataFrame); None until a loader sets it."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value

    def __setattr__(self, name: str, value: Any) -> None:
        tree = self.__pydantic_private__.get("_tree") if self.__pydantic_private__ else None
        if tree is not None:
            if name == "name":
                tree._check_new_name(value, self)
            elif name == "group" and not tree._syncing:
                tree.move(self.name, None, group=value)
                return
        super().__setattr__(name, value)

    def _watch_style(self, *_: Any) -> None:
        old = self._watched_style
        if old is self.style:
            return
        if old is not None:
            old.events.disconnect(self._style_edited)
        self.style.events.connect(self._style_edited)
        self._watched_style = self.style

    def _style_edited(self, *_: Any) -> None:
        self.events.style.emit(self.style)

    def colours(self) -> np.ndarray:
        """RGBA (uint8) per feature — or per cell, shaped ``(rows, cols, 4)`` for a grid — under the style."""
        data = self.data
        if data is None:
            raise ValueError(f"layer {self.name!r} has no data yet")
        if isinstance(data, pd.DataFrame):
            if isinstance(self.style, SingleStyle):
                return colours_for(self.style, n=len(data))
            if self.style.field not in data.columns:
                raise InputError(Problem(self.name, "style.field", f"no column {self.style.field!r}; columns: "
                                                                   f"{', '.join(map(str, data.columns))}"))
            return colours_for(self.style, data[self.style.field])
        values = np.asarray(getattr(data, "values", data))
        rgba = colours_for(self.style, values) if not isinstance(self.style, SingleStyle) else \
            colours_for(self.style, n=values.size)
        return rgba.reshape(*values.shape, 4)


class LayerGroup(EventedModel):
    """A named folder of layers in the tree (one level; groups do not nest)."""

    model_config = {"extra": "forbid", "validate_assignment": True}

    name: str = Field(min_length=1)
    visible: bool = True
    expanded: bool = True
    children: list[Layer] = Field(default_factory=list)

    _tree: Any = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        tree = self.__pydantic_private__.get("_tree") if self.__pydantic_private__ else None
        if tree is not None and name == "name":
            tree._check_new_name(value, self)
        super().__setattr__(name, value)
        if tree is not None and name == "name":
            tree._syncing = True
            try:
                for layer in self.children:
                    layer.group = self.name
            finally:
                tree._syncing = False


class _GroupRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1)
    visible: bool = True
    expanded: bool = True
    index: int | None = Field(default=None, ge=0)


Item = Layer | LayerGroup


class LayerTree:
    """Layers and groups in draw order (first on top), with change signals for views.

    Signals: ``inserted(item, group, index)``, ``removed(item, group, index)``,
    ``moved(item, old_group, old_index, new_group, new_index)`` and
    ``changed(item, field, value)`` when a layer's or group's field changes.
    ``group`` is the group name, or None for the top level.  Names are unique
    across layers and groups.
    """

    inserted = Signal(object, object, int)
    removed = Signal(object, object, int)
    moved = Signal(object, object, int, object, int)
    changed = Signal(object, str, object)

    def __init__(self) -> None:
        self._items: list[Item] = []
        self._relays: dict[int, Callable[..., None]] = {}
        self._syncing = False

    # ------------------------------------------------------------------ queries

    @property
    def items(self) -> tuple[Item, ...]:
        """Top-level layers and groups, top first."""
        return tuple(self._items)

    @property
    def layers(self) -> list[Layer]:
        """Every layer in draw order, top first."""
        return list(self)

    @property
    def groups(self) -> list[LayerGroup]:
        return [item for item in self._items if isinstance(item, LayerGroup)]

    def __iter__(self) -> Iterator[Layer]:
        for item in self._items:
            if isinstance(item, LayerGroup):
                yield from item.children
            else:
                yield item

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return self._locate(name) is not None  # type: ignore[arg-type]

    def __getitem__(self, name: str) -> Item:
        found = self._locate(name)
        if found is None:
            raise KeyError(name)
        return found[0]

    def find(self, name: str) -> Layer | None:
        """The layer with this name, or None."""
        found = self._locate(name, "layer")
        return found[0] if found is not None and isinstance(found[0], Layer) else None

    def group(self, name: str) -> LayerGroup | None:
        """The group with this name, or None."""
        found = self._locate(name, "group")
        return found[0] if found is not None and isinstance(found[0], LayerGroup) else None

    def index_of(self, name: str) -> tuple[str | None, int]:
        """(group name or None, index within it) of a layer or group."""
        found = self._locate(name)
        if found is None:
            raise self._unknown(name)
        return found[1], found[2]

    def visible_layers(self) -> list[Layer]:
        """Layers to draw, top first: visible themselves and in a visible group."""
        out: list[Layer] = []
        for item in self._items:
            if isinstance(item, LayerGroup):
                if item.visible:
                    out.extend(layer for layer in item.children if layer.visible)
            elif item.visible:
                out.append(item)
        return out

    def _locate(self, name: str, kind: str | None = None) -> tuple[Item, str | None, int] | None:
        """Find a layer (kind "layer"), a group ("group") or either, the layer first.

        Layers and groups have separate names: a group "Buildings" may hold a
        layer "Buildings", as in QGIS.
        """
        if kind in (None, "layer"):
            for i, item in enumerate(self._items):
                if isinstance(item, Layer) and item.name == name:
                    return item, None, i
                if isinstance(item, LayerGroup):
                    for j, layer in enumerate(item.children):
                        if layer.name == name:
                            return layer, item.name, j
        if kind in (None, "group"):
            for i, item in enumerate(self._items):
                if isinstance(item, LayerGroup) and item.name == name:
                    return item, None, i
        return None

    def _unknown(self, name: str) -> InputError:
        known = ", ".join(repr(n) for n in self._names()) or "none"
        return InputError(Problem("layer tree", repr(name), f"no layer or group with this name; known: {known}"))

    def _names(self) -> list[str]:
        names = []
        for item in self._items:
            names.append(item.name)
            if isinstance(item, LayerGroup):
                names.extend(layer.name for layer in item.children)
        return names

    def _check_new_name(self, name: str, item: Item | None = None, kind: str | None = None) -> None:
        kind = kind or ("group" if isinstance(item, LayerGroup) else "layer")
        found = self._locate(name, kind)
        if found is not None and found[0] is not item:
            raise InputError(Problem("layer tree", repr(name), f"a {kind} already has this name; "
                                                               f"{kind} names must be unique"))

    # ------------------------------------------------------------------ edits

    def _container(self, group: str | None) -> list:
        if group is None:
            return self._items
        found = self.group(group)
        if found is None:
            raise self._unknown(group)
        return found.children

    @staticmethod
    def _clamp(index: int | None, size: int) -> int:
        if index is None:
            return size
        if index < 0:
            index += size + 1
        return max(0, min(index, size))

    def _attach(self, item: Item) -> None:
        item._tree = self

        def relay(info: Any) -> None:
            self.changed.emit(item, info.signal.name, info.args[0] if info.args else None)

        self._relays[id(item)] = relay
        item.events.connect(relay)

    def _detach(self, item: Item) -> None:
        item._tree = None
        relay = self._relays.pop(id(item), None)
        if relay is not None:
            item.events.disconnect(relay)

    def add_group(self, group: str | LayerGroup, index: int | None = None) -> LayerGroup:
        """Add an (empty or filled) group at ``index`` among the top-level items (None: at the bottom)."""
        item = group if isinstance(group, LayerGroup) else LayerGroup(name=group)
        if item._tree is not None:
            raise ValueError(f"group {item.name!r} is already in a layer tree; remove it there first")
        self._check_new_name(item.name, kind="group")
        children, item.children = list(item.children), []
        pos = self._clamp(index, len(self._items))
        self._items.insert(pos, item)
        self._attach(item)
        self.inserted.emit(item, None, pos)
        try:
            for layer in children:
                self.add(layer, group=item.name)
        except InputError:
            self.remove(item.name, kind="group")
            raise
        return item

    def add(self, layer: Layer, group: str | None = None, index: int | None = None) -> Layer:
        """Add a layer at ``index`` (None: at the bottom) in ``group`` — by default the layer's own
        ``group`` field; a group that does not exist yet is created at the bottom of the top level."""
        group = layer.group if group is None else group
        if layer._tree is not None:
            raise ValueError(f"layer {layer.name!r} is already in a layer tree; remove it there first")
        self._check_new_name(layer.name, kind="layer")
        if group is not None and self.group(group) is None:
            self.add_group(group)
        container = self._container(group)
        pos = self._clamp(index, len(container))
        container.insert(pos, layer)
        self._syncing = True
        try:
            layer.group = group
        finally:
            self._syncing = False
        self._attach(layer)
        self.inserted.emit(layer, group, pos)
        return layer

    def remove(self, name: str, *, kind: str | None = None) -> Item:
        """Take a layer or a group (with its layers) out of the tree and return it.
        ``kind="group"`` picks the group when a layer has the same name."""
        found = self._locate(name, kind)
        if found is None:
            raise self._unknown(name)
        item, group, pos = found
        if isinstance(item, LayerGroup):
            for j in range(len(item.children) - 1, -1, -1):
                layer = item.children[j]
                self._detach(layer)
                self.removed.emit(layer, item.name, j)
        container = self._container(group)
        del container[pos]
        self._detach(item)
        self.removed.emit(item, group, pos)
        return item

    def move(self, name: str, new_index: int | None, group: str | None = None, *, kind: str | None = None) -> None:
        """Move a layer to ``new_index`` in ``group`` (None: top level; created when new), or a group
        to ``new_index`` among the top-level items.  The index is where the item ends up.
        ``kind="group"`` picks the group when a layer has the same name."""
        found = self._locate(name, kind)
        if found is None:
            raise self._unknown(name)
        item, old_group, old_pos = found
        if isinstance(item, LayerGroup) and group is not None:
            raise InputError(Problem("layer tree", repr(name), "groups do not nest; move a group with group=None"))
        if group is not None and self.group(group) is None:
            self.add_group(group)
        source = self._container(old_group)
        del source[old_pos]
        target = self._container(group)
        pos = self._clamp(new_index, len(target))
        target.insert(pos, item)
        if isinstance(item, Layer) and old_group != group:
            self._syncing = True
            try:
                item.group = group
            finally:
                self._syncing = False
        if (old_group, old_pos) != (group, pos):
            self.moved.emit(item, old_group, old_pos, group, pos)

    def clear(self) -> None:
        """Remove everything (``removed`` fires for each item)."""
        for item in list(self._items):
            self.remove(item.name, kind="group" if isinstance(item, LayerGroup) else "layer")

    # ------------------------------------------------------------------ saving

    def to_dict(self) -> dict[str, Any]:
        """The tree's state as plain data: groups with their top-level index, layers in draw order."""
        groups = [{"name": item.name, "visible": item.visible, "expanded": item.expanded, "index": i}
                  for i, item in enumerate(self._items) if isinstance(item, LayerGroup)]
        layers = []
        for layer in self:
            record = layer.model_dump(mode="json", exclude={"metadata", "style", "group"})
            if layer.group is not None:
                record["group"] = layer.group
            record["style"] = style_to_dict(layer.style)
            layers.append(record)
        return {"version": TREE_FORMAT_VERSION, "groups": groups, "layers": layers}

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> "LayerTree":
        """Rebuild a tree from :meth:`to_dict` data; one InputError lists every problem by field path."""
        problems: list[Problem] = []
        if not isinstance(data, dict):
            raise InputError(Problem(source, "", "a layer tree must be a table with groups and layers"))
        for key in data:
            if key not in _TREE_KEYS:
                problems.append(Problem(source, str(key), f"unknown key; allowed keys: {', '.join(_TREE_KEYS)}"))
        if data.get("version", TREE_FORMAT_VERSION) != TREE_FORMAT_VERSION:
            problems.append(Problem(source, "version", f"unsupported version {data.get('version')!r}; "
                                                       f"this Twin reads version {TREE_FORMAT_VERSION}"))
        raw_groups = data.get("groups", [])
        raw_layers = data.get("layers", [])
        for key, value in (("groups", raw_groups), ("layers", raw_layers)):
            if not isinstance(value, list):
                problems.append(Problem(source, key, f"must be an array of tables ([[{key}]])"))
        raw_groups = raw_groups if isinstance(raw_groups, list) else []
        raw_layers = raw_layers if isinstance(raw_layers, list) else []

        groups: list[tuple[int, _GroupRecord]] = []
        for i, record in enumerate(raw_groups):
            if not isinstance(record, dict):
                problems.append(Problem(source, f"groups[{i}]", "must be a table"))
                continue
            try:
                groups.append((i, _GroupRecord(**record)))
            except ValidationError as exc:
                problems += validation_problems(exc, source, f"groups[{i}]")
        layers: list[tuple[int, Layer]] = []
        for i, record in enumerate(raw_layers):
            if not isinstance(record, dict):
                problems.append(Problem(source, f"layers[{i}]", "must be a table"))
                continue
            try:
                layers.append((i, Layer(**record)))
            except ValidationError as exc:
                problems += validation_problems(exc, source, f"layers[{i}]")

        for named in ([(f"groups[{i}]", g.name) for i, g in groups], [(f"layers[{i}]", lay.name) for i, lay in layers]):
            seen: dict[str, str] = {}
            for path, name in named:
                if name in seen:
                    problems.append(Problem(source, f"{path}.name", f"name {name!r} is already used by {seen[name]}; "
                                                                    f"names must be unique"))
                else:
                    seen[name] = path

        # Top level: ungrouped layers and groups.  Groups with an index sit there; the rest
        # (ungrouped layers, groups at their first layer, then empty groups) fill the other slots in order.
        placed = [(i, g) for i, g in groups if g.index is not None]
        placed_names = {g.name for _, g in placed}
        units: list[tuple[str, str]] = []
        for _, layer in layers:
            unit = ("layer", layer.name) if layer.group is None else ("group", layer.group)
            if unit[0] == "layer" or (layer.group not in placed_names and unit not in units):
                units.append(unit)
        units += [("group", g.name) for _, g in groups if g.index is None and ("group", g.name) not in units]
        size = len(units) + len(placed)
        slots: list[tuple[str, str] | None] = [None] * size
        for i, g in placed:
            if g.index >= size:
                problems.append(Problem(source, f"groups[{i}].index", f"{g.index} is past the last top-level "
                                                                       f"position ({size - 1})"))
            elif slots[g.index] is not None:
                problems.append(Problem(source, f"groups[{i}].index", f"position {g.index} is already taken"))
            else:
                slots[g.index] = ("group", g.name)
        if problems:
            raise InputError(problems)

        fill = iter(units)
        slots = [slot if slot is not None else next(fill) for slot in slots]
        records = {g.name: g for _, g in groups}
        by_name = {layer.name: layer for _, layer in layers}
        tree = cls()
        for kind, name in slots:
            if kind == "group":
                g = records.get(name)
                tree.add_group(LayerGroup(name=name, visible=g.visible, expanded=g.expanded) if g else name)
            else:
                tree.add(by_name[name])
        for _, layer in layers:
            if layer.group is not None:
                tree.add(layer, group=layer.group)
        return tree

    def to_toml(self, path: str | PathLike[str]) -> None:
        """Save the tree's state (not the data); the file is replaced in one step, never half-written."""
        path = Path(path)
        text = tomli_w.dumps(self.to_dict())
        with atomic_write(path) as fh:
            fh.write(text)

    @classmethod
    def from_toml(cls, path: str | PathLike[str]) -> "LayerTree":
        """Read a tree saved by :meth:`to_toml`; one InputError lists every problem."""
        data = read_toml(path)
        return cls.from_dict(data, source=str(path))

    def __repr__(self) -> str:
        return f"LayerTree({len(self)} layers, {len(self.groups)} groups)"
