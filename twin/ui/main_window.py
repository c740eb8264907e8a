"""The main window: layer tree, 2D map and 3D view side by side, identify,
attribute table and natural-resources panels, scenes and exports.

It owns no data logic: it loads a City (off the GUI thread), hands the one map
to the views, and wires the shared Selection and the layer tree's events
between them.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton, QSplitter,
    QScrollArea, QTabWidget, QToolBar, QTreeWidget, QTreeWidgetItem, QWidget, QInputDialog,
)

from twin.city.city import City, finish_city, load_city
from twin.errors import TwinError
from twin.geo.scene_file import Bookmark, Scene, apply_tree_state, read_scene, save_scene
from twin.geo.selection import Selection
from twin.progress import Feedback
from twin.ui.attribute_table import AttributeTable
from twin.ui.layer_panel import LayerPanel
from twin.ui.map2d import MapCanvas
from twin.ui.resources_panel import ResourcesPanel
from twin.ui.workers import Job

log = logging.getLogger("twin.ui")

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_CITY = ROOT / "gis_data" / "monaco"
#: Pause (ms) after the 3D camera stops before the full buildings replace their level of detail.
FULL_DETAIL_DELAY_MS = 300


class MainWindow(QMainWindow):
    """Twin's main window. ``ready`` fires once a city is shown in both views;
    ``city_finished`` once its land-class areas (derived after it is shown, when it
    was not in the cache) are in the resources panel."""

    ready = Signal()
    failed = Signal(str)
    city_finished = Signal()

    def __init__(self, *, enable_3d: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Twin")
        self.selection = Selection()
        self.city: City | None = None
        self.scene3d = None
        self.scene_path: Path | None = None
        self.z_scale = 1.0
        self.link_views = True
        self._job: Job | None = None
        self._finishing: list[Job] = []
        self._syncing_views = False
        self._pending_scene: Scene | None = None
        self.notes: list[str] = []
        self.sun = (135.0, 35.0)
        self._camera_at_press: Any = None
        self._full_detail_timer = QTimer(self)
        self._full_detail_timer.setSingleShot(True)
        self._full_detail_timer.setInterval(FULL_DETAIL_DELAY_MS)
        self._full_detail_timer.timeout.connect(self._show_full_detail)
        app = QApplication.instance()
        if app is not None:  # quitting with the window open must not kill a job's thread
            app.aboutToQuit.connect(self._wait_for_background)

        self.map_canvas = MapCanvas(None, self.selection)
        self.plotter = None
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.map_canvas)
        if enable_3d:
            from pyvistaqt import QtInteractor

            self.plotter = QtInteractor(splitter, auto_update=False)
            self.plotter.set_background("#dfe6ee", top="#a9bfd6")
            self.plotter.enable_anti_aliasing = None
            splitter.addWidget(self.plotter.interactor)
            if self.plotter.iren is not None:  # None without a display server (offscreen Qt)
                self.plotter.iren.add_observer("EndInteractionEvent", self._on_3d_camera_moved)
                self.plotter.iren.add_observer("StartInteractionEvent", self._on_3d_interaction_start)
                self.plotter.iren.add_observer("EndInteractionEvent", self._on_3d_interaction_end)
                self.plotter.iren.add_observer("LeftButtonPressEvent", self._on_3d_press)
                self.plotter.iren.add_observer("LeftButtonReleaseEvent", self._on_3d_release)
        splitter.setSizes([800, 800])
        self.splitter = splitter
        self.table = AttributeTable(self.selection)
        self.resources = ResourcesPanel()
        self.bottom_tabs = QTabWidget()
        self.bottom_tabs.addTab(self.table, "Attribute table")
        resources_scroll = QScrollArea()
        resources_scroll.setWidget(self.resources)
        resources_scroll.setWidgetResizable(True)
        self.bottom_tabs.addTab(resources_scroll, "Natural resources")
        central = QSplitter(Qt.Orientation.Vertical)
        central.addWidget(splitter)
        central.addWidget(self.bottom_tabs)
        central.setStretchFactor(0, 3)
        central.setStretchFactor(1, 1)
        central.setSizes([720, 240])
        self.setCentralWidget(central)
        self.central_splitter = central

        self._build_docks()
        self._build_status_bar()
        self._build_actions()
        self.map_canvas.identified.connect(self._show_identified)
        self.map_canvas.cursor_moved.connect(self._show_cursor)
        self.map_canvas.extent_changed.connect(self._on_2d_extent_changed)
        self.selection.changed.connect(self._on_selection_changed)
        self.setAcceptDrops(True)
        self.resize(1600, 1000)

    # ------------------------------------------------------------------ layout

    def _build_docks(self) -> None:
        self.layers_dock = QDockWidget("Layers", self)
        self.layers_dock.setObjectName("layers")
        self.layers_dock.setWidget(QLabel("Open a city (File > Open)"))
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.layers_dock)

        self.identify_tree = QTreeWidget()
        self.identify_tree.setHeaderLabels(["Attribute", "Value"])
        self.identify_tree.setColumnWidth(0, 140)
        self.identify_dock = QDockWidget("Identify", self)
        self.identify_dock.setObjectName("identify")
        self.identify_dock.setWidget(self.identify_tree)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.identify_dock)


    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.coords_label = QLabel("")
        self.attribution_label = QLabel("")
        self.attribution_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setRange(0, 100)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_job)
        bar.addWidget(self.coords_label, 1)
        bar.addPermanentWidget(self.attribution_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    def _action(self, text: str, slot, shortcut: str | None = None, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        menu = self.menuBar().addMenu("&File")
        self.open_action = self._action("&Open city or scene…", self._ask_open, "Ctrl+O")
        self.add_action = self._action("&Add layer…", self._ask_add_layer, "Ctrl+Shift+A")
        self.save_scene_action = self._action("&Save scene…", self._ask_save_scene, "Ctrl+S")
        menu.addActions([self.open_action, self.add_action, self.save_scene_action])
        menu.addSeparator()
        menu.addAction(self._action("Export 2D map as PNG…", lambda: self._ask_export("2d")))
        menu.addAction(self._action("Export 3D view as PNG…", lambda: self._ask_export("3d")))
        menu.addAction(self._action("Export 3D scene as glTF…", lambda: self._ask_export("gltf")))
        menu.addSeparator()
        menu.addAction(self._action("&Quit", self.close, "Ctrl+Q"))

        view = self.menuBar().addMenu("&View")
        self.link_action = self._action("Link 2D and 3D", self._toggle_link, checkable=True)
        self.link_action.setChecked(True)
        view.addAction(self.link_action)
        self.legend_action = self._action("Legend on the map", self.map_canvas.set_legend_visible, checkable=True)
        self.legend_action.setChecked(True)
        view.addAction(self.legend_action)
        view.addAction(self._action("Vertical exaggeration…", self._ask_z_scale))
        view.addAction(self._action("Sun position…", self._ask_sun))
        view.addAction(self._action("Full extent", self._full_extent, "Home"))
        for dock in (self.layers_dock, self.identify_dock):
            view.addAction(dock.toggleViewAction())
        self.bookmarks_menu = self.menuBar().addMenu("&Bookmarks")
        self.bookmarks_menu.addAction(self._action("Add bookmark…", self._ask_bookmark))
        self.bookmarks: list[Bookmark] = []

        tools = QToolBar("Map tools")
        tools.setObjectName("tools")
        self.addToolBar(tools)
        group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for tool, label in (("pan", "Pan"), ("zoom_box", "Zoom box"), ("identify", "Identify"),
                            ("select_box", "Select")):
            action = self._action(label, lambda _=False, t=tool: self.map_canvas.set_tool(t), checkable=True)
            group.addAction(action)
            tools.addAction(action)
            self.tool_actions[tool] = action
        self.tool_actions["pan"].setChecked(True)
        tools.addSeparator()
        tools.addAction(self._action("Full extent", self._full_extent))
        tools.addAction(self.link_action)

    # ------------------------------------------------------------------ opening

    def open_path(self, path: str | os.PathLike[str] | None = None) -> None:
        """Open a city folder, a city.toml or a scene file, loading off the GUI thread."""
        path = Path(path) if path else DEFAULT_CITY
        scene = None
        try:
            if path.is_file() and path.suffix == ".toml" and path.name != "city.toml":
                scene = read_scene(path)
                city_path = scene.city
                self.scene_path = path
            else:
                city_path = path
        except TwinError as exc:
            self.show_error("Could not open the scene", str(exc))
            return
        self._pending_scene = scene
        self._run(lambda fb: load_city(city_path, feedback=fb, defer=True), self._city_loaded,
                  f"Opening {city_path.name}")

    def _run(self, fn, done, message: str) -> None:
        if self._job is not None and self._job.running:
            self.show_error("Busy", "Another task is still running; cancel it first.")
            return
        job = Job(fn, self)
        job.progress.connect(self._on_progress)
        job.finished.connect(lambda result: (self._retire(job), done(result)))
        job.failed.connect(lambda message, details: (self._retire(job), self._job_failed(message, details)))
        job.cancelled.connect(lambda: (self._retire(job), self._job_cancelled()))
        self._job = job
        self.progress.setValue(0)
        self.progress.setFormat(message + " %p%")
        self.progress.show()
        self.cancel_button.show()
        self.statusBar().showMessage(message)
        job.start()

    def _retire(self, job: Job) -> None:
        """The job has reported; its thread ends on its own (kept referenced until then)."""
        if self._job is job:
            self._job = None
        self._finished_jobs = [j for j in getattr(self, "_finished_jobs", []) if j.running] + [job]

    def cancel_job(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def _on_progress(self, percent: float, message: str) -> None:
        self.progress.setValue(int(percent))
        if message:
            self.statusBar().showMessage(message)

    def _job_done(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.statusBar().clearMessage()

    def _job_failed(self, message: str, details: str) -> None:
        self._job_done()
        if details:
            log.error("%s\n%s", message, details)
        self.show_error("Something went wrong", message)
        self.failed.emit(message)

    def _job_cancelled(self) -> None:
        self._job_done()
        self.statusBar().showMessage("Cancelled", 4000)
        self.failed.emit("cancelled")

    def _city_loaded(self, city: City) -> None:
        self.city = city
        scene = self._pending_scene
        self.notes = []
        if scene is not None:
            self.notes = apply_tree_state(city.one_map.tree, scene.tree)
            self.z_scale = scene.z_scale
            self.bookmarks = list(scene.bookmarks)
        else:
            self.z_scale = 1.0
            self.bookmarks = []
        self._refresh_bookmarks_menu()
        self.selection.clear()
        self.setWindowTitle(f"Twin — {city.name}")
        self.map_canvas.set_one_map(city.one_map)
        if scene is not None and scene.extent_2d is not None:
            self.map_canvas.zoom_to_extent(*scene.extent_2d)
        panel = LayerPanel(city.one_map.tree)
        panel.zoom_to_layer.connect(self.map_canvas.zoom_to_layer)
        panel.open_table.connect(self._open_table)
        panel.current_layer_changed.connect(self._current_layer_changed)
        self.layers_dock.setWidget(panel)
        self.layer_panel = panel
        self.resources.set_data(city.land_classes if city.finished else None)
        buildings = next((layer for layer in city.one_map.tree if layer.role == "buildings"), None)
        if buildings is not None:
            self.map_canvas.set_current_layer(buildings.name)
            self.table.set_layer(buildings)
        self.attribution_label.setText(" · ".join(self._attributions()))
        self.attribution_label.setToolTip("\n".join(self._attributions()))
        self._size_panes()
        tree = city.one_map.tree
        tree.changed.connect(self._on_tree_changed)
        for note in self.notes:
            log.warning(note)
        if self.plotter is None:
            self._job_done()
            self.ready.emit()
            self._finish_city(city)
            return
        z_scale = self.z_scale
        self._run(lambda fb: self._build_scene(city, z_scale, fb), self._scene_built, "Building the 3D scene")

    def _finish_city(self, city: City) -> None:
        """Derive the city's land-class areas (and write its cache) off the GUI thread once
        it is on screen: only the resources panel shows them.  Runs beside the user's own
        jobs, which it does not block; closing or quitting waits for it (see
        :meth:`_wait_for_background`)."""
        if city.finished:
            self.city_finished.emit()
            return
        job = Job(lambda fb: finish_city(city, fb), self)
        job.finished.connect(lambda _: self._city_finished(city))
        job.failed.connect(lambda message, details: self._finish_failed(city, message, details))
        self._finishing = [j for j in self._finishing if j.running] + [job]
        job.start()

    def _city_finished(self, city: City) -> None:
        """Show a finished city's land-class areas, unless another city was opened meanwhile."""
        if city is self.city:
            self.resources.set_data(city.land_classes)
            self.city_finished.emit()

    def _finish_failed(self, city: City, message: str, details: str) -> None:
        """The city stays open (the views need nothing that failed); the user is told."""
        log.error("land-class areas of %s: %s\n%s", city.name, message, details)
        if city is self.city:
            self.show_error("Could not compute the land-class areas", message)

    def _attributions(self) -> list[str]:
        if self.city is None:
            return []
        texts = list(self.city.attribution)
        return texts or ["(the city manifest names no attribution)"]

    @staticmethod
    def _build_scene(city: City, z_scale: float, feedback: Feedback):
        """The 3D scene at the scene file's exaggeration, built once, off the GUI thread."""
        from twin.scene.city_scene import CityScene

        scene = CityScene(city)
        scene.build(z_scale=z_scale, feedback=feedback)
        return scene

    def _scene_built(self, scene3d) -> None:
        self._job_done()
        self.scene3d = scene3d
        plotter = self.plotter
        plotter.clear()
        scene3d.add_to_plotter(plotter)
        pending = self._pending_scene
        if pending is not None and pending.camera is not None:
            cam = pending.camera
            plotter.camera_position = [cam.position, cam.focal_point, cam.view_up]
            plotter.renderer.ResetCameraClippingRange()
        else:
            scene3d.reset_camera(plotter)
        self.set_sun(*self.sun, render=False)
        self._pending_scene = None
        plotter.render()
        self.map_canvas.update()
        QTimer.singleShot(0, self.ready.emit)
        self._finish_city(self.city)

    # ------------------------------------------------------------------ events between views

    def _on_tree_changed(self, *args: Any) -> None:
        self.map_canvas.update()
        if self.scene3d is not None and self.plotter is not None:
            self.scene3d.sync_all(self.plotter)

    def _on_selection_changed(self, layer: str, rows: np.ndarray) -> None:
        if self.scene3d is not None and self.plotter is not None:
            self.scene3d.set_selection(layer, rows)
            self.plotter.render()
        if layer and len(rows) == 1:
            data = self.city.one_map.data.get(layer) if self.city else None
            if data is not None and hasattr(data, "iloc"):
                row = data.iloc[int(rows[0])]
                self._show_identified(layer, int(rows[0]), {k: v for k, v in row.items() if k != "geometry"})

    def _current_layer_changed(self, name: str) -> None:
        self.map_canvas.set_current_layer(name)

    def _open_table(self, name: str) -> None:
        layer = self.city.one_map.tree.find(name) if self.city else None
        if layer is not None:
            self.table.set_layer(layer)
            self.bottom_tabs.setCurrentWidget(self.table)

    def _show_identified(self, layer: str, row: int, attributes: dict) -> None:
        self.identify_tree.clear()
        top = QTreeWidgetItem([layer, f"feature {row}" if row >= 0 else "raster cell"])
        self.identify_tree.addTopLevelItem(top)
        for key, value in attributes.items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            QTreeWidgetItem(top, [str(key), f"{value:,.2f}" if isinstance(value, float) else str(value)])
        top.setExpanded(True)
        self.identify_dock.raise_()

    def _show_cursor(self, x: float, y: float, lon: float, lat: float) -> None:
        crs = self.city.crs.to_epsg() if self.city else None
        self.coords_label.setText(f"x {x:,.1f}  y {y:,.1f}  (EPSG:{crs})    lon {lon:.6f}  lat {lat:.6f}")

    def _on_2d_extent_changed(self, xmin: float, ymin: float, xmax: float, ymax: float) -> None:
        if not self.link_views or self._syncing_views or self.plotter is None or self.scene3d is None:
            return
        cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
        position, focal, up = self.plotter.camera_position
        dx, dy = cx - focal[0], cy - focal[1]
        self._syncing_views = True
        try:
            self.plotter.camera_position = [(position[0] + dx, position[1] + dy, position[2]),
                                            (cx, cy, focal[2]), up]
            self.plotter.renderer.ResetCameraClippingRange()
            self.plotter.render()
        finally:
            self._syncing_views = False

    def _on_3d_camera_moved(self, *_: Any) -> None:
        if not self.link_views or self._syncing_views or self.plotter is None:
            return
        focal = self.plotter.camera.focal_point
        self._syncing_views = True
        try:
            self.map_canvas.set_view_centre(focal[0], focal[1])
        finally:
            self._syncing_views = False

    def _on_3d_interaction_start(self, *_: Any) -> None:
        """Draw the buildings' level of detail while the camera moves."""
        if self.scene3d is None or self.plotter is None:
            return
        self._full_detail_timer.stop()
        self._camera_at_press = self.plotter.camera_position.to_list()
        self.scene3d.set_lod(True)

    def _on_3d_interaction_end(self, *_: Any) -> None:
        """Back to the full buildings: at once when the camera did not move (a click: the
        frame drawn next is the still one), else after a pause, so a run of wheel steps
        or drags keeps drawing the cheap ones."""
        if self.scene3d is None or self.plotter is None:
            return
        if self.plotter.camera_position.to_list() == self._camera_at_press:
            self.scene3d.set_lod(False)
        else:
            self._full_detail_timer.start()

    def _show_full_detail(self) -> None:
        if self.scene3d is not None and self.plotter is not None and self.scene3d.set_lod(False):
            self.plotter.render()

    def _on_3d_press(self, *_: Any) -> None:
        self._press_pos = self.plotter.iren.interactor.GetEventPosition()

    def _on_3d_release(self, *_: Any) -> None:
        # pyvista observes releases on the interactor style, which has no event position.
        pos = self.plotter.iren.interactor.GetEventPosition()
        if getattr(self, "_press_pos", None) is None or np.hypot(pos[0] - self._press_pos[0], pos[1] - self._press_pos[1]) > 3:
            return
        self.pick_3d(*pos)

    def pick_3d(self, x: int, y: int) -> tuple[str, int] | None:
        """Select and identify the feature under display position (x, y) of the 3D view."""
        if self.scene3d is None or self.plotter is None:
            return None
        import vtk

        picker = vtk.vtkCellPicker()
        picker.SetTolerance(0.002)
        if not picker.Pick(x, y, 0, self.plotter.renderer):
            return None
        layer = self.scene3d.layer_of_actor(picker.GetActor())
        if layer is None:
            return None
        row = self.scene3d.pick_feature(layer, picker.GetCellId())
        if row is None:
            return None
        self.selection.select(layer, [row])
        return layer, row

    # ------------------------------------------------------------------ actions

    def _toggle_link(self, checked: bool) -> None:
        self.link_views = checked

    def _full_extent(self) -> None:
        self.map_canvas.full_extent()
        if self.scene3d is not None and self.plotter is not None:
            self.scene3d.reset_camera(self.plotter)
            self.plotter.render()

    def _ask_open(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a city folder", str(ROOT / "gis_data"))
        if path:
            self.open_path(path)

    def _ask_add_layer(self) -> None:
        from twin.geo import add_data

        if self.city is None:
            return
        patterns = " ".join(f"*{s}" for s in add_data.SUPPORTED_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Add a layer", str(ROOT), f"Data ({patterns});;All files (*)")
        if path:
            self.add_layer(path)

    def add_layer(self, path: str | os.PathLike[str]) -> list:
        """Add a file as new layer(s) to the one map and both views."""
        from twin.geo import add_data

        if self.city is None:
            return []
        try:
            layers = add_data.add_layer_from_file(self.city.one_map, Path(path))
        except TwinError as exc:
            self.show_error("Could not add the layer", str(exc))
            return []
        self.map_canvas.set_one_map(self.city.one_map)
        if self.scene3d is not None and self.plotter is not None:
            for layer in layers:
                self.scene3d.add_layer(layer, self.plotter)
            self.plotter.render()
        self.attribution_label.setText(" · ".join(self._attributions()))
        return layers

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not getattr(self, "_docks_sized", False):
            self._docks_sized = True
            self.resizeDocks([self.layers_dock], [300], Qt.Orientation.Horizontal)
            self.resizeDocks([self.layers_dock, self.identify_dock], [self.height() * 3 // 5, self.height() * 2 // 5],
                             Qt.Orientation.Vertical)
            QTimer.singleShot(0, self._size_panes)

    def _size_panes(self) -> None:
        """Give the map and the 3D view most of the window; the table a quarter."""
        height = max(self.central_splitter.height(), 400)
        self.central_splitter.setSizes([height * 3 // 4, height // 4])
        width = max(self.splitter.width(), 400)
        self.splitter.setSizes([width // 2, width - width // 2])

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            if (path / "city.toml").exists():
                self.open_path(path)
            else:
                self.add_layer(path)

    def current_scene(self, name: str = "") -> Scene:
        """What is shown now, as a Scene."""
        camera = None
        if self.plotter is not None:
            position, focal, up = self.plotter.camera_position
            camera = Bookmark("current", tuple(position), tuple(focal), tuple(up))
        return Scene(name=name or (self.city.name if self.city else "scene"), city=self.city.manifest.folder,
                     tree=self.city.one_map.tree.to_dict(), extent_2d=self.map_canvas.view_extent(),
                     z_scale=self.z_scale, camera=camera, bookmarks=list(self.bookmarks))

    def save_scene(self, path: str | os.PathLike[str]) -> Path:
        return save_scene(self.current_scene(Path(path).stem), path)

    def _ask_save_scene(self) -> None:
        if self.city is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save scene", str(ROOT / "scenes" / f"{self.city.name.lower()}.toml"),
                                              "Scenes (*.toml)")
        if path:
            try:
                self.save_scene(path)
            except (OSError, TwinError) as exc:
                self.show_error("Could not save the scene", str(exc))

    def _ask_bookmark(self) -> None:
        if self.plotter is None:
            return
        name, ok = QInputDialog.getText(self, "Bookmark", "Name of this view:")
        if ok and name:
            position, focal, up = self.plotter.camera_position
            self.bookmarks.append(Bookmark(name, tuple(position), tuple(focal), tuple(up)))
            self._refresh_bookmarks_menu()

    def _refresh_bookmarks_menu(self) -> None:
        for action in self.bookmarks_menu.actions()[1:]:
            self.bookmarks_menu.removeAction(action)
        for mark in self.bookmarks:
            self.bookmarks_menu.addAction(self._action(mark.name, lambda _=False, m=mark: self.go_to(m)))

    def go_to(self, mark: Bookmark) -> None:
        if self.plotter is not None:
            self.plotter.camera_position = [mark.position, mark.focal_point, mark.view_up]
            self.plotter.renderer.ResetCameraClippingRange()
            self.plotter.render()
            self._on_3d_camera_moved()

    def _ask_sun(self) -> None:
        if self.scene3d is None:
            return
        text, ok = QInputDialog.getText(self, "Sun position",
                                        "Azimuth (° from north), elevation (°), shadows (yes/no):",
                                        text=f"{self.sun[0]:g}, {self.sun[1]:g}, no")
        if not ok:
            return
        try:
            parts = [p.strip() for p in text.split(",")]
            azimuth, elevation = float(parts[0]), float(parts[1])
            shadows = len(parts) > 2 and parts[2].lower() in ("yes", "y", "true", "1")
            self.set_sun(azimuth, elevation, shadows=shadows)
        except (ValueError, IndexError) as exc:
            self.show_error("Sun position", f"{text!r}: {exc}; expected e.g. 135, 35, no")

    def set_sun(self, azimuth_deg: float, elevation_deg: float, *, shadows: bool = False,
                render: bool = True) -> None:
        """Light the 3D view with the sun at this azimuth and elevation (``render``: False
        when the caller renders next anyway)."""
        from twin.scene.city_scene import set_sun

        if self.scene3d is None or self.plotter is None:
            return
        set_sun(self.plotter, self.scene3d, azimuth_deg, elevation_deg, shadows=shadows)
        self.sun = (azimuth_deg, elevation_deg)
        if render:
            self.plotter.render()

    def _ask_z_scale(self) -> None:
        value, ok = QInputDialog.getDouble(self, "Vertical exaggeration", "Factor:", self.z_scale, 0.1, 20.0, 1)
        if ok:
            self.set_z_scale(value)

    def set_z_scale(self, value: float) -> None:
        self.z_scale = float(value)
        if self.scene3d is not None and self.plotter is not None:
            camera = self.plotter.camera_position
            self.scene3d.build(z_scale=self.z_scale)
            self.plotter.clear()
            self.scene3d.add_to_plotter(self.plotter)
            self.plotter.camera_position = camera
            self.plotter.render()

    def _ask_export(self, what: str) -> None:
        suffix = {"2d": "PNG (*.png)", "3d": "PNG (*.png)", "gltf": "glTF (*.glb *.gltf)"}[what]
        default = {"2d": "map2d.png", "3d": "view3d.png", "gltf": "scene.glb"}[what]
        path, _ = QFileDialog.getSaveFileName(self, "Export", default, suffix)
        if not path:
            return
        size, ok = (QSize(1600, 1000), True)
        if what != "gltf":
            text, ok = QInputDialog.getText(self, "Image size", "Width x height in pixels:", text="1600x1000")
            if not ok:
                return
            try:
                w, h = (int(v) for v in text.lower().split("x"))
                size = QSize(w, h)
            except ValueError:
                self.show_error("Export", f"{text!r} is not a size like 1600x1000")
                return
        self.export(what, path, size.width(), size.height())

    def export(self, what: str, path: str | os.PathLike[str], width: int = 1600, height: int = 1000) -> Path | None:
        try:
            if what == "2d":
                return self.map_canvas.save_png(path, width, height)
            from twin.scene.export import export_gltf, screenshot

            if self.plotter is None:
                raise TwinError("the 3D view is not available")
            if what == "3d":
                return screenshot(self.plotter, path, (width, height))
            return export_gltf(self.plotter, path)
        except (OSError, TwinError) as exc:
            self.show_error("Export failed", str(exc))
            return None

    def save_window_png(self, path: str | os.PathLike[str]) -> Path:
        """A PNG of the whole window as shown, 3D view included (grabbed from the screen)."""
        path = Path(path)
        if self.plotter is not None:
            self.plotter.render()
        QGuiApplication.processEvents()
        screen = self.screen() or QGuiApplication.primaryScreen()
        image: QImage = screen.grabWindow(self.winId()).toImage()
        if image.isNull() or image.width() == 0:
            image = self.grab().toImage()
        tmp = path.with_name(path.name + ".tmp.png")
        if not image.save(str(tmp), "PNG"):
            raise TwinError(f"could not write {path}")
        os.replace(tmp, path)
        return path

    def show_error(self, title: str, message: str) -> None:
        log.error("%s: %s", title, message)
        if os.environ.get("TWIN_NO_DIALOGS") == "1":
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setModal(True)
        box.open()

    def closeEvent(self, event) -> None:  # noqa: N802
        if self._job is not None and self._job.running:
            self._job.cancel()
            self._job.wait(10000)
        self._wait_for_background()
        if self.plotter is not None:
            self.plotter.close()
        super().closeEvent(event)

    def _wait_for_background(self) -> None:
        """Let the deferred parts of opened cities finish: they write the cache that
        makes the next open fast, and a thread must not outlive its QThread."""
        for job in self._finishing:
            job.wait(60000)


def install_exception_hook() -> None:
    """Unexpected errors go to the log and a dialog, never a crash."""
    import sys

    def hook(kind, value, tb):
        log.error("unexpected error\n%s", "".join(traceback.format_exception(kind, value, tb)))
        if os.environ.get("TWIN_NO_DIALOGS") == "1":
            return
        QMessageBox.critical(None, "Twin: unexpected error",
                             f"{kind.__name__}: {value}\n\nDetails are in the log file.")

    sys.excepthook = hook
