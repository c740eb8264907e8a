"""Saving what a plotter shows: glTF scenes and screenshots, written atomically.

Each file is written next to its destination under a temporary name and then
moved into place with :func:`os.replace`, so a reader never sees half a file
and a failed export leaves the previous file untouched.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pyvista as pv
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkRenderingCore import (
    VTK_SCALAR_MODE_USE_CELL_DATA,
    VTK_SCALAR_MODE_USE_CELL_FIELD_DATA,
)

_CELL_MODES = (VTK_SCALAR_MODE_USE_CELL_DATA, VTK_SCALAR_MODE_USE_CELL_FIELD_DATA)


@contextmanager
def _atomic_path(path: str | PathLike[str], suffix: str) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers pick the format) moved
    onto ``path`` when the block succeeds and removed when it fails."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(path: str | PathLike[str], suffix: str, writer: Callable[[Path], None]) -> Path:
    with _atomic_path(path, suffix) as tmp:
        writer(tmp)
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"nothing was written for {path}")
    return Path(path)


@contextmanager
def _colours_on_points(plotter: pv.Plotter) -> Iterator[None]:
    """Feed actors coloured per cell with per-point copies while exporting.

    VTK's glTF writer exports colours per vertex only and writes an invalid
    ``COLOR_0`` for cell colours.  The scene's meshes never share a vertex
    between differently coloured cells, so moving colours to points is exact
    for them (a vertex shared by cells of other colours gets their average).
    """
    swapped = []
    try:
        actors = plotter.renderer.GetActors()
        actors.InitTraversal()
        for _ in range(actors.GetNumberOfItems()):
            mapper = actors.GetNextActor().GetMapper()
            if mapper is None or not mapper.GetScalarVisibility():
                continue
            mode = mapper.GetScalarMode()
            data = mapper.GetInput()
            if mode not in _CELL_MODES or not isinstance(data, vtkPolyData):
                continue
            mesh = pv.wrap(data)
            name = (mapper.GetArrayName() if mode == VTK_SCALAR_MODE_USE_CELL_FIELD_DATA else "") \
                or mesh.cell_data.active_scalars_name
            if not name or name not in mesh.cell_data:
                continue
            colours = pv.PolyData()
            colours.copy_structure(mesh)
            colours.cell_data[name] = mesh.cell_data[name]
            values = np.asarray(colours.cell_data_to_point_data().point_data[name])
            original = np.asarray(mesh.cell_data[name])
            if original.dtype == np.uint8:
                values = np.clip(np.rint(values), 0, 255).astype(np.uint8)
            out = pv.PolyData()
            out.copy_structure(mesh)
            out.point_data.set_array(values, name)
            out.point_data.active_scalars_name = name
            swapped.append((mapper, data, mode))
            mapper.SetInputData(out)
            mapper.SetScalarModeToUsePointData()
        yield
    finally:
        for mapper, data, mode in swapped:
            mapper.SetInputData(data)
            mapper.SetScalarMode(mode)


def gltf_to_glb(document: dict[str, Any]) -> bytes:
    """A binary glTF (GLB) container from a glTF document whose buffers are data URIs.

    All buffers become one BIN chunk (each started on a 4-byte boundary, so
    accessor alignment is kept) and buffer views are re-pointed into it.
    """
    doc = json.loads(json.dumps(document))
    blob = bytearray()
    starts = []
    for buffer in doc.get("buffers", []):
        uri = buffer.get("uri", "")
        if not uri.startswith("data:"):
            raise ValueError("only glTF with inlined (data URI) buffers can be packed into a GLB")
        blob.extend(b"\0" * (-len(blob) % 4))
        starts.append(len(blob))
        blob.extend(base64.b64decode(uri.split(",", 1)[1]))
    for view in doc.get("bufferViews", []):
        view["byteOffset"] = view.get("byteOffset", 0) + starts[view["buffer"]]
        view["buffer"] = 0
    blob.extend(b"\0" * (-len(blob) % 4))
    doc["buffers"] = [{"byteLength": len(blob)}] if starts else []
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text
    if starts:
        chunks += struct.pack("<I4s", len(blob), b"BIN\0") + bytes(blob)
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def export_gltf(plotter: pv.Plotter, path: str | PathLike[str]) -> Path:
    """The plotter's scene as one self-contained glTF 2.0 file: binary GLB for a ``.glb``
    name, JSON with inlined buffers for ``.gltf``.

    The scene is rotated to glTF's y-up axes; colours go out as vertex colours.
    Returns the path written.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in (".gltf", ".glb"):
        raise ValueError(f"{path}: give a .glb (binary) or .gltf (text) file name")

    def write(tmp: Path) -> None:
        if suffix == ".gltf":
            with _colours_on_points(plotter):
                plotter.export_gltf(str(tmp), inline_data=True)
            return
        with tempfile.TemporaryDirectory() as folder:
            text = Path(folder) / "scene.gltf"
            with _colours_on_points(plotter):
                plotter.export_gltf(str(text), inline_data=True)
            tmp.write_bytes(gltf_to_glb(json.loads(text.read_text(encoding="utf-8"))))

    return _write(path, suffix, write)


def screenshot(plotter: pv.Plotter, path: str | PathLike[str], size: tuple[int, int] | None = None) -> Path:
    """A PNG (or any image format pyvista knows by suffix) of the view at ``size``
    (width, height in pixels; the window's size when None)."""
    suffix = Path(path).suffix or ".png"
    return _write(path, suffix, lambda tmp: plotter.screenshot(str(tmp), window_size=size))
