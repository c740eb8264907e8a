"""On-disk cache of a City's derived data, keyed by a hash of every input.

The key covers the manifest, the bytes of every source file and table it
names, the default tables shipped with Twin and the cache format, so a changed
input can never be served stale.  Entries are written to a temporary folder and
renamed into place: a killed load leaves nothing that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from importlib import resources
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS

import twin
from twin.geo.manifest import CityManifest

CACHE_FORMAT = 2
_COMPLETE = "complete.json"


def cache_root() -> Path:
    """``$TWIN_CACHE_DIR`` if set, else the user's cache folder."""
    env = os.environ.get("TWIN_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("twin")) / "cities"


def _file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def input_key(manifest: CityManifest) -> str:
    """SHA-256 over everything the derived City depends on."""
    h = hashlib.sha256()
    h.update(f"format={CACHE_FORMAT};twin={twin.__version__}\n".encode())
    h.update(manifest.path.read_bytes())
    files = {manifest.source_path(spec) for spec in manifest.layers}
    files |= {(manifest.folder / spec.classes).resolve() for spec in manifest.layers if spec.classes}
    if manifest.city.land_class_table:
        files.add((manifest.folder / manifest.city.land_class_table).resolve())
    for path in sorted(files):
        h.update(f"{path.name}:{_file_digest(path)}\n".encode())
    # The code and tables that derive the City are inputs too: a changed rule
    # must not be served from an old cache.
    for package in ("twin.geo", "twin.city"):
        folder = resources.files(package)
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            if item.name.endswith(".py"):
                h.update(item.read_bytes())
        data = folder.joinpath("data")
        if data.is_dir():
            for item in sorted(data.iterdir(), key=lambda p: p.name):
                if item.name.endswith(".csv"):
                    h.update(item.read_bytes())
    return h.hexdigest()


def _slug(text: str) -> str:
    return "".join(ch.lower() if ch.isalnum() else "-" for ch in text).strip("-") or "city"


class CacheEntry:
    """One city's cache folder: frames (GeoParquet / Parquet), arrays and JSON."""

    def __init__(self, manifest: CityManifest, key: str | None = None, root: Path | None = None):
        self.key = key or input_key(manifest)
        self.path = (root or cache_root()) / f"{_slug(manifest.city.name)}-{self.key[:20]}"

    @property
    def complete(self) -> bool:
        return (self.path / _COMPLETE).exists()

    def read_json(self, name: str) -> dict:
        return json.loads((self.path / f"{name}.json").read_text())

    def read_frame(self, name: str, crs: CRS | None = None) -> pd.DataFrame:
        """A cached frame; geometry comes back as WKB decoded in bulk, in ``crs``.

        The CRS is passed in rather than parsed from each file's metadata:
        building a pyproj CRS from JSON costs ~10 ms, more than reading a layer.
        """
        meta = json.loads((self.path / f"{name}.meta.json").read_text())
        frame = pq.read_table(self.path / f"{name}.parquet").to_pandas()
        if meta["geometry"] is not None:
            column = meta["geometry"]
            geometry = shapely.from_wkb(frame.pop(column).to_numpy())
            frame = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, index=frame.index, crs=crs, name=column),
                                     crs=crs)
        frame.attrs.update(meta.get("attrs", {}))
        return frame

    def file(self, name: str) -> Path:
        return self.path / name

    def writer(self) -> "CacheWriter":
        return CacheWriter(self)


class CacheWriter:
    """Collects the files of a new entry in a temporary folder, then commits it."""

    def __init__(self, entry: CacheEntry):
        self.entry = entry
        self.tmp = entry.path.with_name(entry.path.name + f".tmp-{uuid.uuid4().hex[:8]}")
        self.tmp.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        return self.tmp / name

    def write_frame(self, name: str, frame: pd.DataFrame) -> None:
        geometry = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
        out = pd.DataFrame(frame.drop(columns=[geometry]) if geometry else frame).copy()
        out.attrs = {}
        for column in out.columns:
            if out[column].dtype != object:
                continue
            if pd.api.types.infer_dtype(out[column], skipna=True) not in ("string", "empty"):
                out[column] = out[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
        if geometry:
            out[geometry] = shapely.to_wkb(frame.geometry.values)
        pq.write_table(pa.Table.from_pandas(out, preserve_index=False), self.tmp / f"{name}.parquet")
        (self.tmp / f"{name}.meta.json").write_text(json.dumps({"geometry": geometry, "attrs": _jsonable(frame.attrs)}))

    def write_json(self, name: str, value: dict) -> None:
        (self.tmp / f"{name}.json").write_text(json.dumps(_jsonable(value), indent=1))

    def commit(self) -> None:
        (self.tmp / _COMPLETE).write_text(json.dumps({"key": self.entry.key}))
        if self.entry.path.exists():
            shutil.rmtree(self.entry.path, ignore_errors=True)
        try:
            os.replace(self.tmp, self.entry.path)
        except OSError:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
