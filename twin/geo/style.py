"""Layer styles (single colour, categorised, graduated) and colour ramps, without Qt.

Styles are evented pydantic models so a view can redraw when one changes.
:func:`colours_for` turns a style and a column of values into an ``(n, 4)``
uint8 RGBA array, which is all a map view needs per feature or cell.  Colours
are hex strings ``#rrggbb`` or ``#rrggbbaa``; ramps are lists of hex stops
interpolated in RGB, so no plotting library is needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union

import numpy as np
import pandas as pd
from psygnal import EventedModel
from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from twin.errors import InputError, Problem

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")

#: Evenly spaced colour stops per ramp, low values first.
RAMPS: dict[str, tuple[str, ...]] = {
    "viridis": ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
                "#b5de2b", "#fde725"),
    "magma": ("#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d", "#fd9668",
              "#feca8d", "#fcfdbf"),
    "blues": ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"),
    "greens": ("#f7fcf5", "#e5f5e0", "#c7e9c0", "#a1d99b", "#74c476", "#41ab5d", "#238b45", "#006d2c", "#00441b"),
    "reds": ("#fff5f0", "#fee0d2", "#fcbba1", "#fc9272", "#fb6a4a", "#ef3b2c", "#cb181d", "#a50f15", "#67000d"),
    "greys": ("#ffffff", "#f0f0f0", "#d9d9d9", "#bdbdbd", "#969696", "#737373", "#525252", "#252525", "#000000"),
    "spectral": ("#d53e4f", "#f46d43", "#fdae61", "#fee08b", "#ffffbf", "#e6f598", "#abdda4", "#66c2a5",
                 "#3288bd"),
    # Elevation: sea blue, lowland green, upland yellow-brown, peaks white.
    "terrain": ("#333399", "#0888ee", "#00cc66", "#80e680", "#ffff99", "#bfad77", "#805c54", "#bfadaa",
                "#ffffff"),
    # Building heights: light sand for low buildings to deep brown for towers.
    "heights": ("#f6eedf", "#ecd9b8", "#e0bf8d", "#d2a066", "#bf7f48", "#a05f34", "#7a4325"),
    # Qualitative ramps: colours are taken in turn, not interpolated.
    "tab10": ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
              "#bcbd22", "#17becf"),
    # Third National Land Survey classes in report order (01 02 03 04 00 20 10 11 12), as in tnls_classes.csv.
    "land_classes": ("#f2e16b", "#e8a95c", "#2f8a3b", "#a6d96a", "#5fbfb4", "#d9665b", "#a3a3a3", "#4a90d9",
                     "#d8c8a8"),
}
QUALITATIVE_RAMPS = frozenset({"tab10", "land_classes"})
BREAK_METHODS = ("equal", "quantile")
MAX_CLASSES = 64


def _check_colour(value: str) -> str:
    if not isinstance(value, str) or not _HEX.match(value):
        raise ValueError(f"{value!r} is not a hex colour like #1f77b4 or #1f77b480")
    return value.lower()


Colour = Annotated[str, AfterValidator(_check_colour)]


def parse_colour(value: str) -> tuple[int, int, int, int]:
    """RGBA (0..255) of a hex colour; alpha 255 when not given."""
    text = _check_colour(value)[1:]
    rgba = [int(text[i:i + 2], 16) for i in range(0, len(text), 2)]
    return (*rgba, 255)[:4] if len(rgba) == 3 else tuple(rgba)  # type: ignore[return-value]


def _to_hex(rgba: Sequence[int]) -> str:
    r, g, b, a = (int(v) for v in rgba)
    return f"#{r:02x}{g:02x}{b:02x}" + ("" if a == 255 else f"{a:02x}")


def ramp_colours(name: str, n: int, reverse: bool = False) -> np.ndarray:
    """``n`` colours (``(n, 4)`` uint8) spread along a ramp, low values first.

    Continuous ramps are interpolated linearly in RGB between their stops;
    qualitative ramps repeat their colours in turn.
    """
    if name not in RAMPS:
        raise ValueError(f"unknown colour ramp {name!r}; known ramps: {', '.join(RAMPS)}")
    stops = np.array([parse_colour(c) for c in RAMPS[name]], dtype=float)
    if reverse:
        stops = stops[::-1]
    if n <= 0:
        return np.zeros((0, 4), dtype=np.uint8)
    if name in QUALITATIVE_RAMPS:
        return stops[np.arange(n) % len(stops)].astype(np.uint8)
    at = np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.5])
    xp = np.linspace(0.0, 1.0, len(stops))
    out = np.column_stack([np.interp(at, xp, stops[:, k]) for k in range(4)])
    return np.rint(out).astype(np.uint8)


def auto_breaks(values: Any, method: str = "equal", n: int = 5) -> np.ndarray:
    """Class edges (``n + 1`` increasing values) for a graduated style.

    ``equal``: equal-width classes between the minimum and the maximum;
    ``quantile``: about the same number of values per class (repeated edges are
    merged, so fewer classes may come back).  NaN is ignored; with no finite
    value the edges are ``[0, 1]`` (everything is nodata anyway).
    """
    if method not in BREAK_METHODS:
        raise ValueError(f"unknown break method {method!r}; use one of {', '.join(BREAK_METHODS)}")
    if n < 1:
        raise ValueError("a graduated style needs at least one class")
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if not len(v):
        return np.array([0.0, 1.0])
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return np.array([lo, hi])
    if method == "equal":
        return np.linspace(lo, hi, n + 1)
    edges = np.unique(np.quantile(v, np.linspace(0.0, 1.0, n + 1)))
    return edges if len(edges) > 1 else np.array([lo, hi])


def class_index(values: Any, breaks: Sequence[float]) -> np.ndarray:
    """Class of each value: ``i`` where ``breaks[i] <= v < breaks[i+1]``; the last class
    includes its upper edge and values outside the edges go to the nearest end class;
    -1 for NaN."""
    v = np.asarray(values, dtype=float)
    edges = np.asarray(breaks, dtype=float)
    idx = np.searchsorted(edges[1:-1], v, side="right")
    return np.where(np.isnan(v), -1, idx)


class _StyleBase(EventedModel):
    """Outline and marker settings shared by every style (widths and sizes in screen pixels)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    stroke: Colour = "#333333"
    stroke_width: float = Field(default=0.5, ge=0.0, le=100.0)
    point_size: float = Field(default=6.0, gt=0.0, le=200.0)


class SingleStyle(_StyleBase):
    """Every feature in one fill colour."""

    kind: Literal["single"] = "single"
    fill: Colour = "#6a9fd4"


class CategorisedStyle(_StyleBase):
    """A colour per value of a field (land class codes, road classes); others get ``default``."""

    kind: Literal["categorised"] = "categorised"
    field: str = Field(min_length=1)
    categories: dict[str, Colour] = Field(default_factory=dict)
    default: Colour = "#cccccc"


class GraduatedStyle(_StyleBase):
    """Colours along a ramp by classes of a numeric field (depths, heights, counts).

    Give ``breaks`` (class edges, increasing) or let them be computed from the
    values with ``method`` and ``n_classes``.  NaN values get ``nodata``.
    """

    kind: Literal["graduated"] = "graduated"
    field: str = Field(min_length=1)
    ramp: str = "viridis"
    reverse: bool = False
    breaks: list[float] | None = None
    method: Literal["equal", "quantile"] = "equal"
    n_classes: int = Field(default=5, ge=1, le=MAX_CLASSES)
    nodata: Colour = "#00000000"

    @field_validator("ramp")
    @classmethod
    def _known_ramp(cls, value: str) -> str:
        if value not in RAMPS:
            raise ValueError(f"unknown colour ramp {value!r}; known ramps: {', '.join(RAMPS)}")
        return value

    @field_validator("breaks")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return None
        if len(value) < 2:
            raise ValueError("breaks need at least two edges (one class)")
        if len(value) > MAX_CLASSES + 1:
            raise ValueError(f"at most {MAX_CLASSES} classes")
        arr = np.asarray(value, dtype=float)
        if not np.isfinite(arr).all() or not (np.diff(arr) > 0).all():
            raise ValueError("breaks must be finite and strictly increasing")
        return [float(v) for v in value]

    def edges(self, values: Any = None) -> np.ndarray:
        """The class edges: ``breaks`` when given, else computed from ``values``."""
        if self.breaks is not None:
            return np.asarray(self.breaks, dtype=float)
        if values is None:
            raise ValueError("this graduated style computes its breaks from values; pass the values")
        return auto_breaks(values, self.method, self.n_classes)

    def colours(self, values: Any = None) -> list[str]:
        """Hex colour of each class (for a legend), low values first."""
        n = len(self.edges(values)) - 1
        return [_to_hex(c) for c in ramp_colours(self.ramp, n, self.reverse)]


Style = Annotated[Union[SingleStyle, CategorisedStyle, GraduatedStyle], Field(discriminator="kind")]
STYLE_KINDS = ("single", "categorised", "graduated")
_STYLE_ADAPTER: TypeAdapter = TypeAdapter(Style)


def field_path(loc: Sequence[Any], prefix: str = "") -> str:
    """``layers[3].style.kind`` from a pydantic error location."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_problems(exc: ValidationError, source: str = "", prefix: str = "") -> list[Problem]:
    """One :class:`Problem` per pydantic error, with the field path of each."""
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        # A discriminated union puts the tag it chose into the path: drop it.
        loc = [p for i, p in enumerate(loc) if not (p in STYLE_KINDS and i > 0 and loc[i - 1] == "style")
               and not (p in STYLE_KINDS and i == 0 and prefix.endswith("style"))]
        kind = err["type"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            loc.append("kind")
            message = f"unknown style kind; use one of {', '.join(STYLE_KINDS)}"
            if kind == "union_tag_not_found":
                message = f"style kind is missing; use one of {', '.join(STYLE_KINDS)}"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "extra_forbidden":
            message = "unknown key"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(Problem(source, field_path(loc, prefix), message))
    return problems


def parse_style(data: Mapping[str, Any] | Style, source: str = "", where: str = "style") -> Style:
    """A style from a plain mapping (TOML/JSON), or one :class:`InputError` listing every problem."""
    if isinstance(data, (SingleStyle, CategorisedStyle, GraduatedStyle)):
        return data
    try:
        return _STYLE_ADAPTER.validate_python(dict(data) if isinstance(data, Mapping) else data)
    except ValidationError as exc:
        raise InputError(validation_problems(exc, source, where)) from None


def style_to_dict(style: Style) -> dict[str, Any]:
    """Plain mapping of a style without empty entries (TOML has no null)."""
    data = style.model_dump(mode="json")
    return {"kind": data.pop("kind"), **{k: v for k, v in data.items() if v is not None}}


def _category_keys(values: Any) -> pd.Series:
    """Values as category keys: integral floats as integers (``3.0`` → ``"3"``), NaN/None as None."""
    series = pd.Series(np.asarray(values).ravel() if not isinstance(values, pd.Series) else values.to_numpy())
    missing = series.isna().to_numpy()
    if pd.api.types.is_float_dtype(series.dtype):
        v = series.to_numpy(dtype=float)
        whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2**62)
        text = np.where(whole, np.where(whole, v, 0).astype(np.int64).astype(str), v.astype(str))
        keys = pd.Series(text, dtype=object)
    elif pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
        keys = series.astype(str).astype(object)
    else:
        keys = series.map(lambda x: x if isinstance(x, str) else str(x)).astype(object)
    keys[missing] = None
    return keys


def auto_categories(values: Any, ramp: str = "tab10") -> dict[str, str]:
    """A colour per distinct value (sorted), taken from a ramp: a start for a categorised style."""
    keys = _category_keys(values).dropna().unique()
    keys = sorted(keys, key=lambda k: (0, float(k)) if _is_number(k) else (1, k))
    return {k: _to_hex(c) for k, c in zip(keys, ramp_colours(ramp, len(keys)))}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _flat(values: Any) -> np.ndarray:
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy().ravel()
    return np.asarray(values).ravel()


def _as_float(values: np.ndarray) -> np.ndarray:
    try:
        return values.astype(float)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)


def colours_for(style: Style, values: Any = None, n: int | None = None) -> np.ndarray:
    """RGBA colour (``(n, 4)`` uint8) of each value under a style, in input order.

    ``values`` is the style's field column (any array-like; 2D grids are read
    row by row).  A single style needs only the count: pass the values or ``n``.
    """
    if isinstance(style, SingleStyle):
        if values is not None:
            n = len(_flat(values))
        if n is None:
            raise ValueError("a single style needs the values or their count n")
        return np.tile(np.array(parse_colour(style.fill), dtype=np.uint8), (int(n), 1))
    if values is None:
        raise ValueError(f"a {style.kind} style needs the values of field {style.field!r}")
    flat = _flat(values)
    if isinstance(style, CategorisedStyle):
        codes, uniques = pd.factorize(pd.Series(flat), use_na_sentinel=True)
        keys = _category_keys(np.asarray(uniques))
        lookup = {k: i for i, k in enumerate(style.categories)}
        default = len(style.categories)
        per_unique = keys.map(lookup).fillna(default).to_numpy(dtype=np.int64)
        palette = np.array([parse_colour(c) for c in style.categories.values()] + [parse_colour(style.default)],
                           dtype=np.uint8)
        index = np.where(codes < 0, default, per_unique[np.maximum(codes, 0)] if len(per_unique) else default)
        return palette[index]
    if isinstance(style, GraduatedStyle):
        v = _as_float(flat)
        edges = style.edges(v)
        palette = ramp_colours(style.ramp, len(edges) - 1, style.reverse)
        palette = np.vstack([palette, np.array(parse_colour(style.nodata), dtype=np.uint8)])
        idx = class_index(v, edges)
        return palette[np.where(idx < 0, len(palette) - 1, idx)]
    raise TypeError(f"not a style: {style!r}")
