"""First-run set-up for a fresh machine, using only the standard library.

``python3 app.py`` and ``python3 -m tests`` call :func:`ensure_environment`
before anything else: it creates ``.venv`` beside the project, installs the
project into it when ``pyproject.toml`` changed since the last install,
installs the Debian packages a virtual display needs (when it may), and then
re-runs the same command with the environment's Python.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".twin-install-stamp"

#: Debian packages for Qt's xcb platform, VTK's OpenGL and a virtual X display.
DISPLAY_PACKAGES = [
    "xvfb", "xauth",
    "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-render-util0",
    "libxcb-xinerama0", "libxcb-randr0", "libxcb-shape0", "libxcb-xkb1", "libxcb-cursor0",
    "libxkbcommon-x11-0", "libxkbcommon0", "libfontconfig1", "libdbus-1-3",
    "libgl1", "libegl1", "libgl1-mesa-dri", "libxrender1", "libxt6", "libxi6",
    "fonts-wqy-microhei",  # Chinese land-class names
]


def _log(message: str) -> None:
    print(f"[twin setup] {message}", file=sys.stderr, flush=True)


def venv_python() -> Path:
    return VENV / "bin" / "python"


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _missing_debian_packages(packages: list[str]) -> list[str]:
    if shutil.which("dpkg-query") is None:
        return []
    missing = []
    for name in packages:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name],
                             capture_output=True, text=True)
        if "install ok installed" not in out.stdout:
            missing.append(name)
    return missing


def ensure_debian_packages(packages: list[str] = DISPLAY_PACKAGES) -> None:
    """Install missing Debian packages when running as root (or with sudo)."""
    missing = _missing_debian_packages(packages)
    if not missing:
        return
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            _log("missing Debian packages (install them to get a virtual display): " + " ".join(missing))
            return
        prefix = ["sudo", "-n"]
    _log("installing Debian packages: " + " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(prefix + ["apt-get", "update", "-qq"], check=False, env=env)
    result = subprocess.run(prefix + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                            env=env)
    if result.returncode != 0:
        _log("apt-get could not install: " + " ".join(missing) + " (the 3D view and display tests need them)")


def _install_fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> None:
    """Create .venv and install the project (with test extras) if it is out of date."""
    if not venv_python().exists():
        _log(f"creating the virtual environment in {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == fingerprint:
        return
    _log("installing Twin and its dependencies into .venv (first run takes a few minutes)")
    pip = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + ["-e", f"{ROOT}[test,data]"], check=True)
    STAMP.write_text(fingerprint + "\n")


def ensure_environment(*, display: bool = True) -> None:
    """Make sure the environment is ready, then continue inside .venv's Python.

    Returns only when already running inside an up-to-date ``.venv``; otherwise
    it sets things up and replaces the current process with the same command
    run by the environment's Python.
    """
    if os.environ.get("TWIN_SKIP_BOOTSTRAP") == "1":
        return
    if display:
        ensure_debian_packages()
    ensure_venv()
    if not _in_venv():
        python = str(venv_python())
        os.execv(python, [python, *sys.orig_argv[1:]])
