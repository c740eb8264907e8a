"""Small file helpers every part shares: atomic writes and checked TOML reads.

An output file is written under a temporary name in the same folder and
renamed into place, so a reader never sees a half-written file and a failure
leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from twin.errors import InputError, Problem


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, encoding: str = "utf-8", newline: str | None = None,
                 binary: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mode = "wb" if binary else "w"
        kwargs = {} if binary else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_toml(path: str | os.PathLike[str], *, what: str = "file") -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is an InputError naming it."""
    path = Path(path)
    if not path.exists():
        raise InputError(Problem(str(path), "", f"{what} not found"))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(Problem(str(path), "", f"not valid TOML: {exc}")) from None
