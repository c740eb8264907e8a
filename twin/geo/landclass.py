"""Land classes of China's Third National Land Survey (第三次全国国土调查, 三调).

The survey's bulletin reports first-level classes (耕地, 园地, 林地, 草地, 湿地,
城镇村及工矿用地, 交通运输用地, 水域及水利设施用地, 其他土地).  Twin derives the
area of each class inside a city boundary from OSM-style tagged polygons, road
centre lines and building footprints (vector data), or from a land cover raster.

Both the class table and the tag → class mapping are CSV data a city may replace
(``land_class_table`` in ``city.toml``).  Mapping rows carry a priority: where
classified polygons overlap, the higher priority is painted over the lower, so
the result is a planar partition of the boundary whose class areas add up to the
boundary area (``closure_error_m2`` ~ 0).  Protection overlays such as
``leisure=nature_reserve`` or ``boundary=*`` are not land uses and are not mapped.

All areas are in square metres; vector inputs must share one metric CRS.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from twin.errors import InputError, Problem

if TYPE_CHECKING:
    from twin.geo.style import CategorisedStyle

DATA_DIR = Path(__file__).with_name("data")
CLASSES_CSV = DATA_DIR / "tnls_classes.csv"
MAPPING_CSV = DATA_DIR / "osm_to_tnls.csv"

#: Code of the row that reports boundary area no feature covers (when no default class is given).
UNCLASSIFIED = "unclassified"
UNCLASSIFIED_NAMES = ("未分类", "Unclassified")
UNCLASSIFIED_COLOR = "#bdbdbd"
TRANSPORT_CODE = "10"
BUILT_UP_CODE = "20"
#: Rank of buffered road centre lines among the mapping priorities: below water
#: (a road bridge does not turn a river into road land), above land cover and zoning.
ROAD_PRIORITY = 80
#: Rank of building footprints: above everything else.
BUILDING_PRIORITY = 100
LANE_WIDTH_M = 3.5
#: Typical carriageway width (m) by OSM ``highway`` value when ``lanes`` is not tagged.
HIGHWAY_WIDTH_M: dict[str, float] = {
    "motorway": 7.0, "trunk": 7.0, "primary": 7.0, "secondary": 7.0, "tertiary": 6.0,
    "motorway_link": 3.5, "trunk_link": 3.5, "primary_link": 3.5, "secondary_link": 3.5,
    "tertiary_link": 3.5, "unclassified": 5.0, "residential": 5.5, "living_street": 4.5,
    "road": 5.0, "service": 3.5, "busway": 3.5, "bus_guideway": 3.5, "raceway": 8.0,
    "escape": 3.5, "construction": 3.5, "track": 3.0, "pedestrian": 4.0, "footway": 2.0,
    "cycleway": 2.0, "bridleway": 2.0, "steps": 2.0, "path": 1.5,
}
DEFAULT_ROAD_WIDTH_M = 3.5
#: ``highway`` values that occupy no land surface (plans, ruins, indoor ways, stops).
NON_SURFACE_HIGHWAYS = frozenset({
    "proposed", "abandoned", "disused", "razed", "corridor", "elevator", "platform", "bus_stop",
    "via_ferrata",
})
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
_POLYGON = 3
_COLLECTIONS = (4, 5, 6, 7)  # multi-point/line/polygon and collections


# ----------------------------------------------------------------------------- tables


def _read_csv(path: Path, required: Sequence[str]) -> tuple[list[tuple[int, dict[str, str]]], list[Problem]]:
    """Rows of a CSV with the line each starts on; problems for a missing file or columns."""
    src = str(path)
    if not path.exists():
        raise InputError(Problem(src, "", "file not found"))
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            missing = [c for c in required if c not in header]
            if missing:
                raise InputError(Problem(src, "line 1", f"missing column(s) {', '.join(missing)}; "
                                         f"the header must name {', '.join(required)}"))
            rows: list[tuple[int, dict[str, str]]] = []
            problems: list[Problem] = []
            start = reader.line_num + 1
            for record in reader:
                line = start
                start = reader.line_num + 1
                if None in record:
                    problems.append(Problem(src, f"line {line}", f"more cells than the {len(header)} columns"))
                clean = {k: (v or "").strip() for k, v in record.items() if k is not None}
                if not any(clean.values()):
                    continue
                rows.append((line, clean))
    except UnicodeDecodeError as exc:
        raise InputError(Problem(src, "", f"not UTF-8 text: {exc}")) from None
    except csv.Error as exc:
        raise InputError(Problem(src, "", f"not a readable CSV: {exc}")) from None
    return rows, problems


def load_land_classes(path: str | PathLike[str] | None = None) -> pd.DataFrame:
    """The class table (``code, name_zh, name_en, color``) in report order; codes are strings."""
    path = Path(path) if path is not None else CLASSES_CSV
    rows, problems = _read_csv(path, ("code", "name_zh", "name_en", "color"))
    seen: dict[str, int] = {}
    for line, row in rows:
        where = f"line {line}"
        code = row["code"]
        if not code:
            problems.append(Problem(str(path), where, "empty class code"))
        elif code in seen:
            problems.append(Problem(str(path), where, f"class code {code!r} is already defined on line {seen[code]}"))
        else:
            seen[code] = line
        if code == UNCLASSIFIED:
            problems.append(Problem(str(path), where, f"{UNCLASSIFIED!r} is reserved for uncovered area"))
        if not row["name_en"] and not row["name_zh"]:
            problems.append(Problem(str(path), where, "a class needs a name (name_zh or name_en)"))
        if not _COLOUR.match(row["color"]):
            problems.append(Problem(str(path), where, f"color {row['color']!r} is not a hex colour like #2f8a3b"))
    if not rows and not problems:
        problems.append(Problem(str(path), "", "the table has no classes"))
    if problems:
        raise InputError(problems)
    frame = pd.DataFrame([{k: r[k] for k in ("code", "name_zh", "name_en", "color")} for _, r in rows],
                         columns=["code", "name_zh", "name_en", "color"], dtype=object)
    frame["color"] = frame["color"].str.lower()
    return frame


@dataclass
class LandClassMapping:
    """OSM tag → land class rules (``key, value, code, priority``); ``value`` ``*`` means any value.

    Per feature the best matching rule wins: the highest priority, then the row
    nearer the top of the table.  For one key an exact value beats ``*``; ``*``
    never matches an empty value or ``no`` (``building=no``).
    """

    table: pd.DataFrame
    classes: pd.DataFrame
    source: str = ""
    _exact: dict[str, dict[str, tuple[str, int, int]]] = field(init=False, repr=False)
    _wild: dict[str, tuple[str, int, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._exact, self._wild = {}, {}
        for order, (key, value, code, priority) in enumerate(
                zip(self.table["key"], self.table["value"], self.table["code"], self.table["priority"])):
            rule = (str(code), int(priority), order)
            if value == "*":
                self._wild[key] = rule
            else:
                self._exact.setdefault(key, {})[value] = rule

    @property
    def keys(self) -> list[str]:
        """Tag keys the rules look at, in table order."""
        return list(dict.fromkeys(self.table["key"]))

    def lookup(self, key: str, value: str | None) -> tuple[str, int] | None:
        """(code, priority) of the rule for one tag, or None."""
        rule = _rule_for(self._exact.get(key, {}), self._wild.get(key), value)
        return None if rule is None else rule[:2]


def _rule_for(exact: dict, wild: tuple | None, value: Any) -> tuple[str, int, int] | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    if text in exact:
        return exact[text]
    return wild if wild is not None and text != "no" else None


def load_tag_mapping(path: str | PathLike[str] | None = None,
                     classes: pd.DataFrame | str | PathLike[str] | None = None) -> LandClassMapping:
    """Read and check a tag → class table; every problem is reported at once with its CSV line."""
    path = Path(path) if path is not None else MAPPING_CSV
    if classes is None or not isinstance(classes, pd.DataFrame):
        classes = load_land_classes(classes)
    known = list(classes["code"])
    rows, problems = _read_csv(path, ("key", "value", "code", "priority"))
    src = str(path)
    seen: dict[tuple[str, str], int] = {}
    records = []
    for line, row in rows:
        where = f"line {line}"
        key, value, code, raw_priority = row["key"], row["value"], row["code"], row["priority"]
        if not key:
            problems.append(Problem(src, where, "empty key; give an OSM tag key such as landuse"))
        if not value:
            problems.append(Problem(src, where, "empty value; give a tag value or * for any value"))
        if key and value:
            if (key, value) in seen:
                problems.append(Problem(src, where, f"{key}={value} is already mapped on line {seen[(key, value)]}"))
            else:
                seen[(key, value)] = line
        if code not in known:
            hint = ""
            if code.isdigit() and code.zfill(2) in known:
                hint = f" (did you mean {code.zfill(2)!r}? spreadsheet programs drop leading zeros)"
            problems.append(Problem(src, where, f"unknown land class code {code!r}{hint}; "
                                                f"known codes: {', '.join(known)}"))
        try:
            priority = int(raw_priority)
            if priority < 0:
                raise ValueError
        except ValueError:
            problems.append(Problem(src, where, f"priority {raw_priority!r} is not a whole number >= 0"))
            priority = -1
        records.append({"key": key, "value": value, "code": code, "priority": priority,
                        "note": row.get("note", ""), "line": line})
    if problems:
        raise InputError(problems)
    table = pd.DataFrame(records, columns=["key", "value", "code", "priority", "note", "line"])
    table = table.astype({"key": object, "value": object, "code": object, "note": object, "priority": np.int64})
    return LandClassMapping(table=table, classes=classes, source=src)


def load_value_mapping(path: str | PathLike[str], classes: pd.DataFrame | None = None,
                       code_column: str = "land_class") -> dict[int | str, str]:
    """Raster value → class code from a CSV (``value,<code_column>``; other columns ignored)."""
    path = Path(path)
    classes = load_land_classes() if classes is None else classes
    known = set(classes["code"])
    rows, problems = _read_csv(path, ("value", code_column))
    out: dict[int | str, str] = {}
    for line, row in rows:
        where = f"line {line}"
        raw = row["value"]
        value: int | str = int(raw) if re.fullmatch(r"[+-]?\d+", raw) else raw
        if raw == "":
            problems.append(Problem(str(path), where, "empty raster value"))
        elif value in out:
            problems.append(Problem(str(path), where, f"raster value {raw!r} is listed twice"))
        if row[code_column] not in known:
            problems.append(Problem(str(path), where, f"unknown land class code {row[code_column]!r}; "
                                                      f"known codes: {', '.join(classes['code'])}"))
        out[value] = row[code_column]
    if problems:
        raise InputError(problems)
    return out


def land_class_style(classes: pd.DataFrame | None = None, field: str = "code") -> "CategorisedStyle":
    """A categorised map style colouring each class with its table colour."""
    from twin.geo.style import CategorisedStyle

    classes = load_land_classes() if classes is None else classes
    return CategorisedStyle(field=field, categories=dict(zip(classes["code"], classes["color"])),
                            default="#ffffff00")


# ----------------------------------------------------------------------------- classify


def _classify(frame: pd.DataFrame, mapping: LandClassMapping) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: code (object, None where no rule), priority (-1) and rule order of the best rule."""
    n = len(frame)
    codes = np.full(n, None, dtype=object)
    best = np.full(n, -1, dtype=np.int64)
    order = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    for key in mapping.keys:
        if key not in frame.columns:
            continue
        exact = mapping._exact.get(key, {})
        wild = mapping._wild.get(key)
        column = frame[key]
        if column.dtype == object:
            column = column.map(lambda v: v[0] if isinstance(v, (list, tuple)) and v else v)
        valid = column.notna().to_numpy()
        if not valid.any():
            continue
        text = np.full(n, "", dtype=object)
        text[valid] = column[valid].astype(str).str.strip().to_numpy(dtype=object)
        # Look each distinct value up once, then spread the rules to the rows.
        which, uniques = pd.factorize(text)
        rules = [_rule_for(exact, wild, u) for u in uniques]
        u_code = np.array([r[0] if r else None for r in rules] + [None], dtype=object)
        u_pri = np.array([r[1] if r else -1 for r in rules] + [-1], dtype=np.int64)
        u_ord = np.array([r[2] if r else 0 for r in rules] + [0], dtype=np.int64)
        pri, ordr = u_pri[which], u_ord[which]
        better = (pri >= 0) & ((pri > best) | ((pri == best) & (ordr < order)))
        best[better] = pri[better]
        order[better] = ordr[better]
        codes[better] = u_code[which[better]]
    return codes, best, order


def classify_features(gdf: pd.DataFrame, mapping: LandClassMapping) -> tuple[pd.Series, pd.Series]:
    """Land class code and rule priority of each feature from its tag columns (None / NA when unmapped)."""
    codes, best, _ = _classify(gdf, mapping)
    code_series = pd.Series(codes, index=gdf.index, dtype=object, name="land_class")
    priority = pd.Series(pd.array(np.where(best >= 0, best, 0), dtype="Int64"), index=gdf.index, name="priority")
    priority[best < 0] = pd.NA
    return code_series, priority


# ----------------------------------------------------------------------------- geometry helpers


def _geometry_array(obj: Any) -> np.ndarray:
    if obj is None:
        return np.empty(0, dtype=object)
    if isinstance(obj, gpd.GeoDataFrame):
        return np.asarray(obj.geometry.values, dtype=object)
    if isinstance(obj, gpd.GeoSeries):
        return np.asarray(obj.values, dtype=object)
    if isinstance(obj, shapely.Geometry):
        return np.array([obj], dtype=object)
    return np.asarray(list(obj), dtype=object)


def _parts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Single-part geometries and the index of the input each came from (collections unpacked)."""
    index = np.arange(len(geoms))
    while len(geoms):
        multi = np.isin(shapely.get_type_id(geoms), _COLLECTIONS)
        if not multi.any():
            break
        parts, sub = shapely.get_parts(geoms, return_index=True)
        geoms, index = parts, index[sub]
    return geoms, index


def _valid_polygons(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Valid polygon parts with their input index, and how many inputs needed repair."""
    geoms = np.asarray(geoms, dtype=object)
    present = ~shapely.is_missing(geoms)
    if not present.all():
        geoms = geoms.copy()
        geoms[~present] = shapely.Polygon()
    geoms = shapely.force_2d(geoms)
    invalid = ~shapely.is_valid(geoms)
    repaired = int(invalid.sum())
    if repaired:
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    parts, index = _parts(geoms)
    keep = (shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)
    parts, index = parts[keep], index[keep]
    keep = shapely.area(parts) > 0
    return parts[keep], index[keep], repaired


def _first_text(column: pd.Series) -> pd.Series:
    """Tag values as stripped strings ('' where missing); lists (merged OSM ways) give their first item."""
    values = column.map(lambda v: v[0] if isinstance(v, (list, tuple)) and v else v)
    text = values.astype(object).where(values.notna(), "")
    return text.map(lambda v: str(v).strip())


def road_widths_m(roads: pd.DataFrame) -> np.ndarray:
    """Carriageway width (m) per road: ``lanes`` × 3.5 m where tagged, else a typical width for its class.

    The class is read from ``highway`` (OSM ways) or ``road_class`` (network
    edges).  A directed edge table (``u``, ``v`` columns) has lanes per
    direction, so the lanes of both directions of a segment are added up.
    """
    n = len(roads)
    class_column = next((c for c in ("highway", "road_class") if c in roads.columns), None)
    if class_column is not None:
        kind = _first_text(roads[class_column])
        width = kind.map(lambda v: HIGHWAY_WIDTH_M.get(v, DEFAULT_ROAD_WIDTH_M)).to_numpy(dtype=float)
    else:
        width = np.full(n, DEFAULT_ROAD_WIDTH_M)
    if "lanes" in roads.columns:
        lanes = pd.to_numeric(_first_text(roads["lanes"]).str.extract(_NUMBER, expand=False),
                              errors="coerce").to_numpy(dtype=float)
        if {"u", "v"} <= set(roads.columns) and n:
            u, v = roads["u"].to_numpy(), roads["v"].to_numpy()
            key = pd.DataFrame({"a": np.minimum(u, v), "b": np.maximum(u, v)})
            if "osm_way_id" in roads.columns:
                key["w"] = roads["osm_way_id"].to_numpy()
            per_lane = pd.Series(np.nan_to_num(lanes, nan=0.0))
            lanes = per_lane.groupby([key[c] for c in key.columns]).transform("sum").to_numpy(dtype=float)
        use = np.isfinite(lanes) & (lanes > 0)
        width = np.where(use, lanes * LANE_WIDTH_M, width)
    return width


def _surface_roads(roads: pd.DataFrame) -> np.ndarray:
    """True for roads on the ground surface: not in tunnels, not underground, not planned or indoor."""
    keep = np.ones(len(roads), dtype=bool)
    if "highway" in roads.columns:
        keep &= ~_first_text(roads["highway"]).isin(NON_SURFACE_HIGHWAYS).to_numpy()
    if "tunnel" in roads.columns:
        keep &= _first_text(roads["tunnel"]).isin(["", "no", "False", "false"]).to_numpy()
    if "location" in roads.columns:
        keep &= ~_first_text(roads["location"]).isin(["underground", "indoor"]).to_numpy()
    if "indoor" in roads.columns:
        keep &= ~_first_text(roads["indoor"]).isin(["yes", "True", "true"]).to_numpy()
    return keep


def _road_widths(roads: pd.DataFrame, road_width_m: Any, problems: list[Problem]) -> np.ndarray:
    default = road_widths_m(roads)
    if road_width_m is None:
        return default
    if isinstance(road_width_m, str):
        if road_width_m not in roads.columns:
            problems.append(Problem("roads", road_width_m, "no such column for the road width"))
            return default
        given = pd.to_numeric(_first_text(roads[road_width_m]).str.extract(_NUMBER, expand=False),
                              errors="coerce").to_numpy(dtype=float)
        return np.where(np.isfinite(given) & (given > 0), given, default)
    if callable(road_width_m):
        given = np.asarray(road_width_m(roads), dtype=float)
    else:
        given = np.broadcast_to(np.asarray(road_width_m, dtype=float), (len(roads),))
    if given.shape != (len(roads),):
        problems.append(Problem("roads", "road_width_m", f"gave {given.shape} widths for {len(roads)} roads"))
        return default
    return np.where(np.isfinite(given) & (given > 0), given, default)


def _crs_problems(inputs: dict[str, Any]) -> tuple[CRS | None, list[Problem]]:
    problems: list[Problem] = []
    found: dict[str, CRS] = {}
    for name, obj in inputs.items():
        crs = getattr(obj, "crs", None)
        if crs is None:
            continue
        crs = CRS.from_user_input(crs)
        if crs.is_geographic:
            problems.append(Problem(name, "crs", f"{crs.name} is in degrees; reproject to the city's metric CRS"))
        found[name] = crs
    first = next(iter(found.items()), None)
    if first is not None:
        for name, crs in found.items():
            if crs != first[1]:
                problems.append(Problem(name, "crs", f"{crs.name} differs from {first[0]}'s {first[1].name}; "
                                                     f"all inputs must be in one CRS"))
    return (first[1] if first else None), problems


# ----------------------------------------------------------------------------- areas


@dataclass
class LandClassAreas:
    """Area of each land class inside a boundary, with the per-class geometry for maps.

    ``table``: ``code, name_zh, name_en, area_m2, share`` (0..1 of the boundary
    area for vector data, of the counted cells for rasters), one row per class plus an ``unclassified`` row when uncovered
    area has no default class.  ``closure_error_m2`` is the boundary area minus
    the sum of the class areas: ~0 for vector partitions, the discretisation
    error for rasters.
    """

    table: pd.DataFrame
    geometry: gpd.GeoDataFrame | None
    boundary_area_m2: float
    closure_error_m2: float
    repairs: dict[str, int] = field(default_factory=dict)

    def area(self, code: str) -> float:
        """Area (m2) of one class code (0 when absent)."""
        rows = self.table.loc[self.table["code"] == code, "area_m2"]
        return float(rows.sum())

    def save(self, path: str | PathLike[str]) -> None:
        """Write to a folder: ``areas.json`` and, for vector results, ``geometry.parquet``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        if self.geometry is not None:
            self.geometry.to_parquet(folder / "geometry.parquet")
        meta = {"table": self.table.to_dict(orient="records"), "boundary_area_m2": self.boundary_area_m2,
                "closure_error_m2": self.closure_error_m2, "repairs": self.repairs}
        (folder / "areas.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | PathLike[str]) -> "LandClassAreas":
        """Read what :meth:`save` wrote."""
        folder = Path(path)
        meta = json.loads((folder / "areas.json").read_text(encoding="utf-8"))
        table = pd.DataFrame(meta["table"], columns=["code", "name_zh", "name_en", "area_m2", "share"])
        table = table.astype({"code": object, "name_zh": object, "name_en": object,
                              "area_m2": float, "share": float})
        file = folder / "geometry.parquet"
        geometry = gpd.read_parquet(file) if file.exists() else None
        return cls(table=table, geometry=geometry, boundary_area_m2=float(meta["boundary_area_m2"]),
                   closure_error_m2=float(meta["closure_error_m2"]), repairs=dict(meta.get("repairs", {})))


def _area_table(areas: dict[str, float], classes: pd.DataFrame, with_unclassified: bool) -> pd.DataFrame:
    rows = []
    for code, zh, en in zip(classes["code"], classes["name_zh"], classes["name_en"]):
        rows.append((code, zh, en, float(areas.get(code, 0.0))))
    if with_unclassified:
        rows.append((UNCLASSIFIED, *UNCLASSIFIED_NAMES, float(areas.get(UNCLASSIFIED, 0.0))))
    table = pd.DataFrame(rows, columns=["code", "name_zh", "name_en", "area_m2"]).astype(
        {"code": object, "name_zh": object, "name_en": object, "area_m2": float})
    total = table["area_m2"].sum()
    table["share"] = table["area_m2"] / total if total > 0 else 0.0
    return table


def _check_codes(codes: Iterable[str], classes: pd.DataFrame, where: str, problems: list[Problem]) -> None:
    known = set(classes["code"])
    unknown = sorted({c for c in codes if c is not None and c not in known})
    if unknown:
        problems.append(Problem(where, "code", f"land class code(s) {', '.join(map(repr, unknown))} are not in "
                                               f"the class table ({', '.join(classes['code'])})"))


def land_class_areas(
    boundary: Any,
    layers: Sequence[gpd.GeoDataFrame] = (),
    mapping: LandClassMapping | None = None,
    *,
    roads: gpd.GeoDataFrame | None = None,
    road_width_m: str | float | Callable[[gpd.GeoDataFrame], Any] | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    default_code: str | None = None,
    classes: pd.DataFrame | None = None,
    road_code: str = TRANSPORT_CODE,
    road_priority: int = ROAD_PRIORITY,
    building_code: str = BUILT_UP_CODE,
    building_priority: int = BUILDING_PRIORITY,
) -> LandClassAreas:
    """Partition a boundary into land classes and measure each (m2).

    ``layers`` are tagged polygon layers classified with ``mapping`` (other
    geometry types are ignored).  Road lines are buffered to half their width
    with flat ends (``road_width_m``: a column name, a number, a callable of the
    road frame, or None for lanes × 3.5 m / a width per highway class); roads in
    tunnels or underground are left out.  Roads and buildings rank with
    ``road_priority`` / ``building_priority`` among the mapping priorities.  Area
    no feature covers goes to ``default_code``, else to an ``unclassified`` row.
    """
    mapping = load_tag_mapping() if mapping is None else mapping
    classes = mapping.classes if classes is None else classes
    problems: list[Problem] = []
    named: dict[str, Any] = {"boundary": boundary, "roads": roads, "buildings": buildings}
    named.update({f"layers[{i}]": layer for i, layer in enumerate(layers)})
    crs, crs_issues = _crs_problems(named)
    problems += crs_issues
    _check_codes(mapping.table["code"], classes, mapping.source or "land class mapping", problems)
    _check_codes([road_code, building_code], classes, "land_class_areas", problems)
    if default_code is not None and default_code not in set(classes["code"]):
        problems.append(Problem("default_land_class", "", f"{default_code!r} is not a land class code; "
                                                          f"known codes: {', '.join(classes['code'])}"))
    repairs: dict[str, int] = {}

    bparts, _, fixed = _valid_polygons(_geometry_array(boundary))
    repairs["boundary"] = fixed
    area_of_boundary = shapely.union_all(bparts) if len(bparts) else shapely.Polygon()
    if area_of_boundary.is_empty or area_of_boundary.area <= 0:
        problems.append(Problem("boundary", "", "the boundary has no polygon area"))

    # (priority, rule order, code) -> polygon parts; higher priority painted first.
    groups: dict[tuple[int, int, str], list[np.ndarray]] = {}
    for i, layer in enumerate(layers):
        if layer is None or len(layer) == 0:
            continue
        codes, priority, order = _classify(layer, mapping)
        hit = np.flatnonzero(codes != None)  # noqa: E711 - elementwise on an object array
        if not len(hit):
            continue
        parts, index, fixed = _valid_polygons(_geometry_array(layer)[hit])
        repairs[f"layers[{i}]"] = fixed
        src = hit[index]
        keys = pd.DataFrame({"p": priority[src], "o": order[src], "c": codes[src]})
        for (p, o, c), rows in keys.groupby(["p", "o", "c"], sort=False).indices.items():
            groups.setdefault((int(p), int(o), str(c)), []).append(parts[rows])

    last = len(mapping.table)
    if roads is not None and len(roads):
        widths = _road_widths(roads, road_width_m, problems)
        keep = _surface_roads(roads)
        geoms = shapely.force_2d(_geometry_array(roads))
        types = shapely.get_type_id(geoms)
        lines = keep & np.isin(types, (1, 2, 5)) & (widths > 0)
        buffered = shapely.buffer(geoms[lines], widths[lines] / 2.0, cap_style="flat", join_style="round")
        areas_given = keep & np.isin(types, (3, 6))
        road_parts, _, fixed = _valid_polygons(np.concatenate([buffered, geoms[areas_given]]))
        repairs["roads"] = fixed
        groups.setdefault((road_priority, last, road_code), []).append(road_parts)
    if buildings is not None and len(buildings):
        parts, _, fixed = _valid_polygons(_geometry_array(buildings))
        repairs["buildings"] = fixed
        groups.setdefault((building_priority, last + 1, building_code), []).append(parts)

    if problems:
        raise InputError(problems)

    ranked = [(code, chunks) for (_, _, code), chunks in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1]))]
    faces, face_code = _partition(area_of_boundary, ranked)
    rest_code = default_code if default_code is not None else UNCLASSIFIED
    face_code[face_code == None] = rest_code  # noqa: E711
    face_area = shapely.area(faces)
    areas = pd.Series(face_area).groupby(face_code).sum().to_dict() if len(faces) else {}

    boundary_area = float(area_of_boundary.area)
    table = _area_table(areas, classes, with_unclassified=default_code is None)
    table["share"] = table["area_m2"] / boundary_area
    closure = boundary_area - float(table["area_m2"].sum())

    colours = dict(zip(classes["code"], classes["color"]))
    rows = []
    for row in table.itertuples(index=False):
        mine = faces[face_code == row.code]
        if len(mine):
            # Faces of one partition share their edges exactly: a coverage union is valid and fast.
            geom = shapely.coverage_union_all(mine)
            rows.append({"code": row.code, "name_zh": row.name_zh, "name_en": row.name_en,
                         "color": colours.get(row.code, UNCLASSIFIED_COLOR), "area_m2": row.area_m2,
                         "geometry": geom})
    geometry = gpd.GeoDataFrame(rows, columns=["code", "name_zh", "name_en", "color", "area_m2", "geometry"],
                                geometry="geometry", crs=crs)
    return LandClassAreas(table=table, geometry=geometry, boundary_area_m2=boundary_area,
                          closure_error_m2=closure, repairs={k: v for k, v in repairs.items() if v})


def _dissolve(polygons: np.ndarray) -> shapely.Geometry:
    """Union of valid polygons, overlaying only those that touch another.

    Most footprints of a city touch nothing: they go into the result as they
    are, and only the few clusters that meet are unioned.  A general union of
    tens of thousands of buildings costs seconds; this costs a spatial query.
    """
    if len(polygons) < 2:
        return shapely.union_all(polygons)
    left, right = shapely.STRtree(polygons).query(polygons, predicate="intersects")
    meets = np.zeros(len(polygons), dtype=bool)
    meets[left[left != right]] = True
    if not meets.any():
        return shapely.multipolygons(polygons)
    merged = shapely.get_parts(shapely.union_all(polygons[meets]))
    merged = merged[shapely.get_type_id(merged) == _POLYGON]
    return shapely.multipolygons(np.concatenate([polygons[~meets], merged]))


def _partition(boundary: shapely.Geometry,
               ranked: list[tuple[str, list[np.ndarray]]]) -> tuple[np.ndarray, np.ndarray]:
    """Faces tiling ``boundary`` and the code painted on each (None where nothing covers it).

    ``ranked`` lists (code, polygon parts) from the top of the painting order down.
    Each level is unioned once; the level outlines and the boundary are noded
    together and polygonized into faces, and each face takes the code of the
    highest level containing its interior point.  This is the same partition as
    differencing every level with the union of the levels above, without
    repeated overlays against a growing union (seconds for a city's buildings
    and roads, against a fraction of a second here).
    """
    shapely.prepare(boundary)
    xmin, ymin, xmax, ymax = boundary.bounds
    levels: list[tuple[str, shapely.Geometry]] = []
    for code, chunks in ranked:
        geoms = np.concatenate(chunks) if chunks else np.empty(0, dtype=object)
        if len(geoms):
            geoms = geoms[shapely.intersects(geoms, boundary)]
        if not len(geoms):
            continue
        painted = shapely.clip_by_rect(_dissolve(geoms), xmin, ymin, xmax, ymax)
        if not painted.is_empty:
            levels.append((code, painted))
    outlines = [shapely.boundary(boundary)] + [shapely.boundary(g) for _, g in levels]
    noded = shapely.union_all(outlines)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    faces = faces[shapely.area(faces) > 0]
    points = shapely.point_on_surface(faces)
    inside = shapely.contains(boundary, points)
    faces, points = faces[inside], points[inside]
    code = np.full(len(faces), None, dtype=object)
    for level_code, painted in reversed(levels):
        shapely.prepare(painted)
        code[shapely.contains(painted, points)] = level_code
    return faces, code


def raster_land_class_areas(
    class_codes: np.ndarray,
    cell_area_m2: float,
    value_to_code: dict[Any, str] | None,
    inside: np.ndarray | None = None,
    *,
    classes: pd.DataFrame | None = None,
    default_code: str | None = None,
    nodata: float | int | None = None,
    boundary_area_m2: float | None = None,
) -> LandClassAreas:
    """Land class areas (m2) from a land cover raster: cell count × cell area per class.

    ``value_to_code`` maps raster values to class codes (None: the values are
    codes already).  Cells outside ``inside`` are not counted; NaN, ``nodata``
    and unmapped values inside go to ``default_code``, else to ``unclassified``.
    ``boundary_area_m2`` (the vector boundary's area) makes ``closure_error_m2``
    the raster's discretisation error; without it the counted area is used.
    """
    classes = load_land_classes() if classes is None else classes
    values = np.asarray(class_codes)
    problems: list[Problem] = []
    if inside is not None:
        inside = np.asarray(inside, dtype=bool)
        if inside.shape != values.shape:
            problems.append(Problem("land cover", "inside", f"mask shape {inside.shape} differs from the "
                                                            f"raster's {values.shape}"))
    if not np.isfinite(cell_area_m2) or cell_area_m2 <= 0:
        problems.append(Problem("land cover", "cell_area_m2", f"{cell_area_m2!r} is not a positive area"))
    if value_to_code is not None:
        _check_codes(value_to_code.values(), classes, "land cover classes", problems)
    if default_code is not None and default_code not in set(classes["code"]):
        problems.append(Problem("default_land_class", "", f"{default_code!r} is not a land class code"))
    if problems:
        raise InputError(problems)

    counted = values[inside] if inside is not None else values.ravel()
    valid = np.ones(counted.shape, dtype=bool)
    if np.issubdtype(counted.dtype, np.floating):
        valid &= ~np.isnan(counted)
    if nodata is not None:
        valid &= counted != nodata
    uniq, counts = np.unique(counted[valid], return_counts=True)
    rest_code = default_code if default_code is not None else UNCLASSIFIED
    known = set(classes["code"])
    areas: dict[str, float] = {}
    for value, count in zip(uniq.tolist(), counts.tolist()):
        if value_to_code is None:
            code = str(value)
        else:
            code = value_to_code.get(value)
            if code is None and isinstance(value, float) and value.is_integer():
                code = value_to_code.get(int(value))
        code = code if code in known else rest_code
        areas[code] = areas.get(code, 0.0) + count * float(cell_area_m2)
    missing = int((~valid).sum())
    if missing:
        areas[rest_code] = areas.get(rest_code, 0.0) + missing * float(cell_area_m2)
    table = _area_table(areas, classes, with_unclassified=default_code is None)
    total = float(table["area_m2"].sum())
    boundary_area = float(boundary_area_m2) if boundary_area_m2 is not None else total
    return LandClassAreas(table=table, geometry=None, boundary_area_m2=boundary_area,
                          closure_error_m2=boundary_area - total)
