"""The City: what the models get, derived once from the one map and cached.

``load_city(folder)`` reads the manifest, builds (or takes from the cache) the
one map's vector layers and the derived data — road network, buildings, points
of interest, land-class areas — and reads the grids (DEM, land cover on the DEM
grid, rain zones).  A second load with unchanged inputs comes from the cache.
``load_city(folder, defer=True)`` leaves what the map and the 3D view do not
draw (land-class areas, the road network when roads layers are drawn, the
cache write) to :func:`finish_city`, so a window can show the city sooner.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from twin.city.buildings import Buildings, build_buildings
from twin.city.cache import CacheEntry
from twin.city.grids import align_to
from twin.city.network import RoadNetwork, build_road_network
from twin.city.pois import PointsOfInterest, build_pois
from twin.errors import Problem, InputError
from twin.geo.landclass import (
    LandClassAreas,
    land_class_areas,
    load_land_classes,
    load_tag_mapping,
    load_value_mapping,
    raster_land_class_areas,
)
from twin.geo.manifest import CityManifest, LayerSpec, read_manifest
from twin.geo.onemap import OneMap, load_one_map
from twin.geo.raster import Grid
from twin.progress import Feedback

LAND_LAYER_ROLES = ("landuse", "natural", "water", "pois", "shelters")


@dataclass
class _Deferred:
    """What :func:`load_city` left for :func:`finish_city`: the cache entry to write
    (None: no cache) and whether the road network is still to build."""

    entry: CacheEntry | None
    network: bool


@dataclass
class City:
    """A city ready for analysis and simulation, all in one metric CRS.

    A city loaded with ``defer=True`` is ready only after :func:`finish_city`
    (see :attr:`finished`).
    """

    one_map: OneMap
    network: RoadNetwork | None
    buildings: Buildings | None
    pois: PointsOfInterest
    dem: Grid | None
    landcover: Grid | None
    rain_zones: Grid | None
    rain: pd.DataFrame | None
    inflows: gpd.GeoDataFrame | None
    land_classes: LandClassAreas | None
    from_cache: bool = False
    cache_path: Path | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    deferred: _Deferred | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """Whether every derived part is there (always, unless loaded with ``defer=True``)."""
        return self.deferred is None

    @property
    def name(self) -> str:
        return self.one_map.name

    @property
    def manifest(self) -> CityManifest:
        return self.one_map.manifest

    @property
    def crs(self) -> CRS:
        return self.one_map.crs

    @property
    def boundary(self) -> shapely.Geometry | None:
        return self.one_map.boundary

    @property
    def terrain(self) -> str:
        """"dem" when the city has a terrain grid, "flat" when it has none."""
        return "dem" if self.dem is not None else "flat"

    @property
    def attribution(self) -> list[str]:
        return self.one_map.attribution

    def extent(self) -> tuple[float, float, float, float]:
        return self.one_map.extent()


def _osm_highway_sources(manifest: CityManifest) -> list[Path]:
    return [manifest.source_path(s) for s in manifest.layers_with_role("roads") if s.is_osm]


def _build_network(one_map: OneMap, dem: Grid | None) -> RoadNetwork | None:
    from twin.geo.osm import read_osm_highways

    sources = _osm_highway_sources(one_map.manifest)
    if not sources:
        return None
    network = build_road_network(read_osm_highways(sources[0]), one_map.crs, dem=dem)
    return network


def _build_buildings(one_map: OneMap, dem: Grid | None) -> Buildings | None:
    frames = [frame for _, frame in one_map.data_for_role("buildings")]
    if not frames:
        return None
    raw = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=one_map.crs)
    city = one_map.manifest.city
    return build_buildings(raw, dem=dem, population=city.population,
                           floor_area_per_resident_m2=city.floor_area_per_resident_m2)


def _show_derived_buildings(one_map: OneMap, buildings: Buildings | None) -> None:
    """Let the buildings layer show the derived table (heights, sources, residents).

    With one buildings layer its rows are the City's buildings in the same
    order, so a selection means the same buildings in the map, the 3D view
    and the table.
    """
    specs = one_map.manifest.layers_with_role("buildings")
    if buildings is None or len(specs) != 1:
        return
    name = specs[0].name
    one_map.data[name] = buildings.frame
    layer = one_map.tree.find(name)
    if layer is not None:
        layer.data = buildings.frame
        layer.metadata = {**layer.metadata, "features": len(buildings.frame)}


def _build_pois(one_map: OneMap) -> PointsOfInterest:
    layers = []
    for role in ("pois", "shelters"):
        for spec, frame in one_map.data_for_role(role):
            layers.append((spec.name, frame, spec.poi_kind, spec.capacity_field, role == "shelters"))
    return build_pois(layers, one_map.crs)


def _landcover_spec(manifest: CityManifest) -> LayerSpec:
    """The land cover layer's entry, which must name its classes table: checked when the
    city loads, before its land-class areas (perhaps deferred) are computed."""
    spec = manifest.layers_with_role("landcover")[0]
    if spec.classes is None:
        raise InputError(Problem(str(manifest.path), f"layer {spec.name!r}: classes",
                                 "a land cover raster needs a classes table (value,name,land_class)"))
    return spec


def _roads_drawn_from_layers(one_map: OneMap) -> bool:
    """Whether a roads layer has features: the views draw roads from it, so the road
    network (a second pass over the OSM file) is needed only by the models."""
    return any(len(frame) for _, frame in one_map.data_for_role("roads"))


def _land_classes(one_map: OneMap, network: RoadNetwork | None, buildings: Buildings | None,
                  landcover: Grid | None) -> LandClassAreas | None:
    manifest = one_map.manifest
    if one_map.boundary is None:
        return None
    table_path = manifest.folder / manifest.city.land_class_table if manifest.city.land_class_table else None
    classes = load_land_classes()
    if landcover is not None:
        spec = _landcover_spec(manifest)
        value_to_code = load_value_mapping(manifest.folder / spec.classes, classes)
        from rasterio.features import geometry_mask

        inside = geometry_mask([one_map.boundary], out_shape=landcover.shape, transform=landcover.transform, invert=True)
        return raster_land_class_areas(landcover.values, landcover.cell_area, value_to_code, inside,
                                       nodata=landcover.nodata, default_code=manifest.city.default_land_class,
                                       boundary_area_m2=float(shapely.area(one_map.boundary)), classes=classes)
    mapping = load_tag_mapping(table_path)
    layers = [frame for role in LAND_LAYER_ROLES for _, frame in one_map.data_for_role(role)]
    roads = None
    road_frames = [frame for _, frame in one_map.data_for_role("roads")]
    if road_frames:
        # Road surfaces: every highway centre line (footways and service roads
        # are transport land too, not just the drivable network) ...
        all_roads = pd.concat(road_frames, ignore_index=True)
        lines = np.isin(shapely.get_type_id(all_roads.geometry.values), (1, 5))
        roads = gpd.GeoDataFrame(all_roads.loc[lines], geometry="geometry", crs=one_map.crs)
        # ... and highway areas (squares, pedestrian zones) classified by their tags.
        layers.append(gpd.GeoDataFrame(all_roads.loc[~lines], geometry="geometry", crs=one_map.crs))
    elif network is not None:
        roads = network.to_geodataframe()
    return land_class_areas(one_map.boundary, layers, mapping, roads=roads,
                            buildings=buildings.frame if buildings is not None else None,
                            default_code=manifest.city.default_land_class, classes=classes)


def _grids(one_map: OneMap) -> tuple[Grid | None, Grid | None, Grid | None]:
    dem = next((g for _, g in one_map.data_for_role("dem")), None)
    landcover = next((g for _, g in one_map.data_for_role("landcover")), None)
    zones = next((g for _, g in one_map.data_for_role("rain_zones")), None)
    if dem is not None:
        landcover = align_to(landcover, dem) if landcover is not None else None
        zones = align_to(zones, dem) if zones is not None else None
    return dem, landcover, zones


def load_city(source: str | Path | CityManifest, *, use_cache: bool = True, feedback: Feedback | None = None,
              cache_root: Path | None = None, defer: bool = False) -> City:
    """Load a city folder (or manifest) into a :class:`City`, from the cache when it is current.

    With ``defer`` a city that is not in the cache comes back before its
    land-class areas, its road network (when roads layers hold the roads the
    views draw) and the cache write: :func:`finish_city` does those, e.g.
    after a window has shown the city.
    """
    feedback = feedback or Feedback()
    t0 = time.perf_counter()
    manifest = source if isinstance(source, CityManifest) else read_manifest(source)
    entry = CacheEntry(manifest, root=cache_root) if use_cache else None
    timings: dict[str, float] = {}
    if entry is not None and entry.complete:
        city = _load_from_cache(manifest, entry, feedback)
        city.timings_s["total"] = time.perf_counter() - t0
        return city

    one_map = load_one_map(manifest, feedback=feedback)
    timings.update(one_map.timings_s)
    dem, landcover, zones = _grids(one_map)
    if landcover is not None and one_map.boundary is not None:  # the inputs of the land-class areas
        _landcover_spec(manifest)
    defer_network = defer and _roads_drawn_from_layers(one_map)
    network = None
    if not defer_network:
        feedback.progress(72, "building the road network")
        t = time.perf_counter()
        network = _build_network(one_map, dem)
        timings["network"] = time.perf_counter() - t
    feedback.progress(80, "deriving buildings and points of interest")
    t = time.perf_counter()
    buildings = _build_buildings(one_map, dem)
    pois = _build_pois(one_map)
    _show_derived_buildings(one_map, buildings)
    timings["buildings_pois"] = time.perf_counter() - t
    rain = next((table for _, table in one_map.data_for_role("rain")), None)
    inflows = next((frame for _, frame in one_map.data_for_role("inflows")), None)
    city = City(one_map=one_map, network=network, buildings=buildings, pois=pois, dem=dem, landcover=landcover,
                rain_zones=zones, rain=rain, inflows=inflows, land_classes=None, timings_s=timings,
                deferred=_Deferred(entry, defer_network))
    if not defer:
        finish_city(city, feedback)
    city.timings_s["total"] = time.perf_counter() - t0
    return city


def finish_city(city: City, feedback: Feedback | None = None) -> City:
    """Derive what ``load_city(..., defer=True)`` left out (road network, land-class
    areas) and write the cache; nothing to do for a finished city."""
    deferred = city.deferred
    if deferred is None:
        return city
    feedback = feedback or Feedback()
    if deferred.network:
        feedback.progress(72, "building the road network")
        t = time.perf_counter()
        city.network = _build_network(city.one_map, city.dem)
        city.timings_s["network"] = time.perf_counter() - t
    feedback.progress(88, "computing land-class areas")
    t = time.perf_counter()
    city.land_classes = _land_classes(city.one_map, city.network, city.buildings, city.landcover)
    city.timings_s["land_classes"] = time.perf_counter() - t
    if deferred.entry is not None:
        feedback.progress(95, "writing the cache")
        _write_cache(city, deferred.entry)
        city.cache_path = deferred.entry.path
    city.deferred = None
    feedback.progress(100, "city ready")
    return city


def _write_cache(city: City, entry: CacheEntry) -> None:
    writer = entry.writer()
    try:
        derived = city.buildings.frame if city.buildings is not None else None
        for spec in city.manifest.layers:
            value = city.one_map.data.get(spec.name)
            if value is derived:
                continue  # the buildings layer shows the derived table, cached once as "buildings"
            if isinstance(value, gpd.GeoDataFrame):
                writer.write_frame(f"layer-{_safe(spec.name)}", value)
        if city.network is not None:
            city.network.save(writer.file("network.npz"))
        if city.buildings is not None:
            writer.write_frame("buildings", city.buildings.frame)
            writer.write_json("buildings", {"residents_method": city.buildings.residents_method,
                                            "notes": city.buildings.notes})
        writer.write_frame("pois", city.pois.frame)
        if city.land_classes is not None:
            city.land_classes.save(writer.file("land_classes"))
        writer.write_json("meta", {"crs": city.crs.to_wkt(), "timings_s": city.timings_s})
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def _load_from_cache(manifest: CityManifest, entry: CacheEntry, feedback: Feedback) -> City:
    t0 = time.perf_counter()
    crs = CRS.from_wkt(entry.read_json("meta")["crs"])
    vector = {}
    for spec in manifest.layers:
        name = f"layer-{_safe(spec.name)}"
        if (entry.path / f"{name}.parquet").exists():
            vector[spec.name] = entry.read_frame(name, crs)
    buildings = None
    if (entry.path / "buildings.parquet").exists():
        info = entry.read_json("buildings")
        buildings = Buildings(entry.read_frame("buildings", crs), info["residents_method"], info["notes"])
        specs = manifest.layers_with_role("buildings")
        if len(specs) == 1:
            vector[specs[0].name] = buildings.frame
    one_map = load_one_map(manifest, feedback=feedback, vector_data=vector, crs=crs)
    _show_derived_buildings(one_map, buildings)
    dem, landcover, zones = _grids(one_map)
    network = RoadNetwork.load(entry.file("network.npz")) if entry.file("network.npz").exists() else None
    pois = PointsOfInterest(entry.read_frame("pois", crs))
    land = LandClassAreas.load(entry.file("land_classes")) if entry.file("land_classes").exists() else None
    rain = next((table for _, table in one_map.data_for_role("rain")), None)
    inflows = next((frame for _, frame in one_map.data_for_role("inflows")), None)
    return City(one_map=one_map, network=network, buildings=buildings, pois=pois, dem=dem, landcover=landcover,
                rain_zones=zones, rain=rain, inflows=inflows, land_classes=land, from_cache=True,
                cache_path=entry.path, timings_s={"cache_load": time.perf_counter() - t0})


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
