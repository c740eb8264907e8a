"""The desktop app's entry point: ``python app.py [city-or-scene] [--screenshot PNG --size WxH]``.

``--screenshot`` opens the window, waits until the city is shown in both
views, writes a PNG of the whole window and exits: the way to check the app on
a machine with only a virtual display.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from twin.ui.main_window import MainWindow, install_exception_hook


def log_file() -> Path:
    from platformdirs import user_log_dir

    folder = Path(os.environ.get("TWIN_LOG_DIR") or user_log_dir("twin"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "twin.log"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1600x1000") from None
    if not (200 <= w <= 8000 and 200 <= h <= 8000):
        raise argparse.ArgumentTypeError("width and height must be 200..8000 pixels")
    return w, h


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="app.py", description="Twin: the urban digital twin desktop app")
    parser.add_argument("path", nargs="?", help="city folder, city.toml or scene file (default: the Monaco sample)")
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the window once both views have rendered, then exit")
    parser.add_argument("--size", type=_size, default=(1600, 1000), help="window size WxH (default 1600x1000)")
    parser.add_argument("--no-3d", action="store_true", help="start without the 3D view")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(filename=log_file(), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.screenshot:
        os.environ.setdefault("TWIN_NO_DIALOGS", "1")
    import pyvista as pv
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    pv.global_theme.multi_samples = 0 if os.environ.get("TWIN_SOFTWARE_GL", "1") == "1" else 4
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Twin")
    install_exception_hook()
    window = MainWindow(enable_3d=not args.no_3d)
    window.resize(*args.size)
    window.show()
    status = {"code": 0}
    if args.screenshot:
        def shoot() -> None:
            try:
                window.save_window_png(args.screenshot)
                print(f"wrote {args.screenshot}")
            except Exception as exc:  # report and exit non-zero rather than hang
                print(f"app.py: could not write the screenshot: {exc}", file=sys.stderr)
                status["code"] = 1
            app.quit()

        def fail(message: str) -> None:
            print(f"app.py: {message}", file=sys.stderr)
            status["code"] = 2
            app.quit()

        window.ready.connect(lambda: QTimer.singleShot(800, shoot))
        window.failed.connect(fail)
        QTimer.singleShot(180_000, lambda: fail("timed out waiting for the views to render"))
    QTimer.singleShot(0, lambda: window.open_path(args.path))
    code = app.exec()
    return status["code"] or code
