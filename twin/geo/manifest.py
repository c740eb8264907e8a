"""The city manifest (``city.toml``): what each file of a city folder is.

Reading a manifest checks everything it can before any heavy loading (schema,
unknown keys, files that do not exist, roles that need a raster or an OSM file,
references between layers) and raises one :class:`~twin.errors.InputError`
listing every problem with its line and field path.  The format is documented
in ``docs/city-manifest.md``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twin.errors import InputError, Problem
from twin.geo.crs import parse_crs

Role = Literal[
    "boundary", "roads", "buildings", "landuse", "water", "natural", "pois", "shelters",
    "dem", "landcover", "rain_zones", "rain", "inflows", "other",
]
RASTER_ROLES = {"dem", "landcover", "rain_zones"}
TABLE_ROLES = {"rain"}
SINGLE_ROLES = {"boundary", "roads", "dem", "landcover"}
OSM_SUFFIXES = (".osm.pbf", ".pbf", ".osm", ".osm.xml")
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".asc", ".nc")
TABLE_SUFFIXES = (".csv", ".txt")

OsmTagValue = bool | str | list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CitySection(_Strict):
    """The ``[city]`` table."""

    name: str = Field(min_length=1)
    crs: str = "utm"
    terrain: Literal["dem", "flat"] | None = None
    description: str = ""
    population: int | None = Field(default=None, gt=0)
    population_source: str = ""
    floor_area_per_resident_m2: float = Field(default=40.0, gt=5.0, lt=1000.0)
    default_land_class: str | None = None
    land_class_table: str | None = None
    attribution: list[str] = Field(default_factory=list)


class LayerSpec(_Strict):
    """One ``[[layers]]`` entry."""

    name: str = Field(min_length=1)
    role: Role
    source: str = Field(min_length=1)
    group: str | None = None
    osm_tags: dict[str, OsmTagValue] | None = None
    layer: str | None = None
    poi_kind: str | None = None
    capacity_field: str | None = None
    units: str | None = None
    classes: str | None = None
    zones: str | None = None
    visible: bool = True
    opacity: float = Field(default=1.0, ge=0.0, le=1.0)
    style: dict[str, Any] | None = None

    @property
    def is_osm(self) -> bool:
        return self.source.lower().endswith(OSM_SUFFIXES)

    @property
    def kind(self) -> str:
        if self.role in RASTER_ROLES:
            return "raster"
        if self.role in TABLE_ROLES:
            return "table"
        return "vector"


class CityManifest(_Strict):
    """A whole ``city.toml``; ``folder`` is where relative paths start."""

    city: CitySection
    layers: list[LayerSpec] = Field(default_factory=list)
    folder: Path = Path(".")
    path: Path = Path("city.toml")

    def source_path(self, spec: LayerSpec) -> Path:
        return (self.folder / spec.source).resolve()

    def layers_with_role(self, role: str) -> list[LayerSpec]:
        return [spec for spec in self.layers if spec.role == role]

    def layer(self, name: str) -> LayerSpec:
        for spec in self.layers:
            if spec.name == name:
                return spec
        raise KeyError(name)


def read_manifest(path: str | Path) -> CityManifest:
    """Read and check a city folder's ``city.toml`` (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "city.toml"
    if not path.exists():
        where = "city.toml" if path.name == "city.toml" else ""
        raise InputError(Problem(str(path), where, "no city manifest here; a city folder needs a city.toml "
                                 "(see docs/city-manifest.md, or create one with `twin city init`)"))
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(Problem(str(path), "", f"not valid TOML: {exc}")) from None
    locator = _LineLocator(text)
    problems: list[Problem] = []
    try:
        manifest = CityManifest.model_validate({**raw, "folder": path.parent.resolve(), "path": path.resolve()})
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(_problem_from_pydantic(path, err, locator))
        raise InputError(problems) from None
    problems += _semantic_problems(manifest, locator)
    if problems:
        raise InputError(problems)
    return manifest


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("bool", "str", "list[str]"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _problem_from_pydantic(path: Path, err: dict, locator: "_LineLocator") -> Problem:
    loc = tuple(err["loc"])
    field = _field_path(loc)
    where = locator.describe(loc, field)
    if err["type"] == "extra_forbidden":
        model = LayerSpec if loc and loc[0] == "layers" else CitySection if loc and loc[0] == "city" else CityManifest
        known = [k for k in model.model_fields if k not in ("folder", "path")]
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        return Problem(str(path), where, f"unknown key{hint}; allowed keys: {', '.join(known)}")
    if err["type"] == "missing":
        return Problem(str(path), where, "required field is missing")
    return Problem(str(path), where, err["msg"])


def _semantic_problems(m: CityManifest, locator: "_LineLocator") -> list[Problem]:
    src = str(m.path)
    problems: list[Problem] = []

    def add(loc: tuple, message: str) -> None:
        problems.append(Problem(src, locator.describe(loc, _field_path(loc)), message))

    try:
        parse_crs(m.city.crs)
    except ValueError as exc:
        add(("city", "crs"), str(exc))
    seen: dict[str, int] = {}
    for i, spec in enumerate(m.layers):
        if spec.name in seen:
            add(("layers", i, "name"), f"layer name {spec.name!r} is already used by layers[{seen[spec.name]}]; names must be unique")
        seen.setdefault(spec.name, i)
        file = m.source_path(spec)
        if not file.exists():
            add(("layers", i, "source"), f"file {spec.source!r} not found in {m.folder}")
        suffix = spec.source.lower()
        if spec.kind == "raster" and not suffix.endswith(RASTER_SUFFIXES):
            add(("layers", i, "source"), f"role {spec.role!r} needs a raster (GeoTIFF), got {spec.source!r}")
        if spec.kind == "table" and not suffix.endswith(TABLE_SUFFIXES):
            add(("layers", i, "source"), f"role {spec.role!r} needs a CSV table, got {spec.source!r}")
        if spec.is_osm and not spec.osm_tags:
            add(("layers", i, "osm_tags"), "an OSM source needs osm_tags saying which features to take, e.g. { building = true }")
        if spec.osm_tags and not spec.is_osm:
            add(("layers", i, "osm_tags"), "osm_tags only applies to OSM sources (.osm.pbf or .osm)")
        if spec.role == "roads" and spec.is_osm and spec.osm_tags and "highway" not in spec.osm_tags:
            add(("layers", i, "osm_tags"), "a roads layer from OSM must select highway features: { highway = true }")
        if spec.classes is not None and not (m.folder / spec.classes).exists():
            add(("layers", i, "classes"), f"class table {spec.classes!r} not found in {m.folder}")
        if spec.zones is not None:
            target = next((s for s in m.layers if s.name == spec.zones), None)
            if target is None:
                add(("layers", i, "zones"), f"no layer named {spec.zones!r}; name the layer whose role is \"rain_zones\"")
            elif target.role != "rain_zones":
                add(("layers", i, "zones"), f"layer {spec.zones!r} has role {target.role!r}; it must be \"rain_zones\"")
        if spec.style is not None:
            from twin.geo.style import parse_style

            try:
                parse_style(spec.style, source=src, where=f"layers[{i}].style")
            except InputError as exc:
                line = locator.line_of(("layers", i, "style"))
                for p in exc.problems:
                    problems.append(Problem(p.source, f"line {line}: {p.where}" if line else p.where, p.message))
    for role in SINGLE_ROLES:
        found = [i for i, s in enumerate(m.layers) if s.role == role]
        for i in found[1:]:
            add(("layers", i, "role"), f"only one layer may have role {role!r} (layers[{found[0]}] has it already)")
    has_dem = any(s.role == "dem" for s in m.layers)
    if m.city.terrain == "dem" and not has_dem:
        add(("city", "terrain"), "terrain = \"dem\" but no layer has role \"dem\"")
    if m.city.terrain == "flat" and has_dem:
        add(("city", "terrain"), "terrain = \"flat\" but a layer has role \"dem\"; remove one of them")
    if m.city.land_class_table is not None and not (m.folder / m.city.land_class_table).exists():
        add(("city", "land_class_table"), f"file {m.city.land_class_table!r} not found in {m.folder}")
    return problems


class _LineLocator:
    """Finds the line of a key in TOML text, for messages like 'line 12: layers[2].source'."""

    _header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, text: str):
        self.tables: list[tuple[str, int, int]] = []  # (table name, array index, first line)
        self.keys: dict[tuple[str, int], dict[str, int]] = {}
        counts: dict[str, int] = {}
        current = ("", 0)
        self.keys[current] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            header = self._header.match(line)
            if header:
                name = header.group(2)
                if header.group(1) == "[[":
                    index = counts.get(name, -1) + 1
                    counts[name] = index
                else:
                    index = 0
                current = (name, index)
                self.tables.append((name, index, lineno))
                self.keys.setdefault(current, {})
                continue
            key = self._key.match(line)
            if key:
                self.keys.setdefault(current, {}).setdefault(key.group(1), lineno)

    def line_of(self, loc: tuple) -> int | None:
        if not loc:
            return None
        table = str(loc[0])
        index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
        rest = loc[2:] if len(loc) > 1 and isinstance(loc[1], int) else loc[1:]
        keys = self.keys.get((table, index))
        if keys is None:
            return None
        if rest and str(rest[0]) in keys:
            return keys[str(rest[0])]
        for name, idx, lineno in self.tables:
            if name == table and idx == index:
                return lineno
        return None

    def describe(self, loc: tuple, field: str) -> str:
        line = self.line_of(loc)
        return f"line {line}: {field}" if line else field
