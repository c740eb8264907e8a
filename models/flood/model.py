"""Flood response: the city's water (hydraulics) and the people fighting it (Mesa agents).

Each clock step (``step_s``) the water moves first - rain, river inflows,
drains and the pumps now running, in the solver's own stable sub-steps - and
then the responders act on what they see at the end of the step:

* police posts close roads whose water passes the plan's closure depth and
  reopen them when it has gone (:mod:`models.flood.police`);
* pump crews are sent to hotspots past the trigger depth, drive there over
  the flooded network and pump (:mod:`models.flood.pumps`);
* households warned from the forecast leave for shelters
  (:mod:`models.flood.evacuation`, :mod:`models.flood.forecast`).

Closed and flooded roads feed back into every travel time.  The water does
not depend on the seed; who complies, how long people take to leave and who
drives do.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.flood.evacuation import HOUSEHOLD_SIZE, Evacuation, EvacuationRules, Households, Shelters, households_in
from models.flood.field import (
    DEFAULT_MANNING_N,
    DesignStorm,
    DrainageDesign,
    FloodField,
    land_classes_on,
    storm_formula,
)
from models.flood.forecast import flood_forecast
from models.flood.movement import MovementNetwork, TravelGraph
from models.flood.police import ClosureRules, PolicePost, RoadClosures, closure_sites
from models.flood.pumps import FAILED, PumpCrew, PumpService, PumpSite
from models.flood.sources import STORM_FORMULAS
from twin.errors import InputError, Problem
from twin.sim.model import Inject, TwinModel
from twin.sim.parameters import InjectKind, Kpi, Parameter

FLOODED_DEPTHS_M = (0.15, 0.3)
WATER_CLASS = 11
"""Land class of rivers and ponds: no lattice nodes there (Carlisle land cover value 1)."""
FRAME_MAX_CELLS = 200
"""Playback frames keep the depth on at most this many cells a side (block maxima)."""


def _p(name: str, type_: str, default: Any, unit: str = "", lo: float | None = None, hi: float | None = None,
       help: str = "", choices: tuple[str, ...] = ()) -> Parameter:
    return Parameter(name, type_, default, unit=unit, minimum=lo, maximum=hi, help=help, choices=choices)  # type: ignore[arg-type]


class FloodResponseModel(TwinModel):
    """Rainstorm and river flood on the city's terrain, with road closures, pumps, warnings and evacuation."""

    name = "flood"
    title = "Flood response (rain, rivers, closures, pumps, evacuation)"
    hazard_parameters = (
        _p("coarsen", "int", 4, "DEM cells", 1, 64,
           "grid cell = this many DEM cells a side: 1 is the analyst's 5 m on Carlisle, 4 the trainer's 20 m"),
        _p("manning_n", "float", DEFAULT_MANNING_N, "s/m^(1/3)", 0.005, 0.3,
           "Manning's n everywhere (the Carlisle sample uses 0.035)"),
        _p("infiltration", "choice", "none", help="infiltration by land class", choices=("none", "green_ampt", "horton")),
        _p("storm_formula", "choice", "none", help="the city's storm intensity formula: it sized the drains and "
                                                   "gives design storms ('none': no drains)",
           choices=("none", *STORM_FORMULAS)),
        _p("design_return_period_years", "float", 0.0, "years", 0.0, 1000.0,
           "rain a Chicago design storm of this return period from storm_formula in place of the city's rain "
           "series (0: the city's series)"),
        _p("design_duration_min", "float", 120.0, "min", 5.0, 1440.0, "the design storm's length"),
        _p("design_peak_ratio", "float", 0.4, "", 0.0, 1.0, "where the design storm's peak falls in it"),
        _p("drain_duration_min", "float", 10.0, "min", 1.0, 180.0, "design rain duration of the drains (inlet time)"),
        _p("runoff_coefficient", "float", 0.6, "", 0.05, 1.0, "composite runoff coefficient of the drained areas"),
        _p("forecast_coarsen", "int", 2, "grid cells", 1, 16,
           "the forecast behind the warnings runs on cells this many times the scenario's"),
        _p("lattice_spacing_m", "float", 50.0, "m", 5.0, 1000.0,
           "node spacing of the movement lattice where the city has no road layer"),
        _p("lattice_speed_kph", "float", 25.0, "km/h", 1.0, 120.0, "free driving speed on the lattice"),
        _p("vehicle_limit_m", "float", 0.3, "m", 0.05, 2.0, "roads deeper than this are impassable to vehicles"),
        _p("danger_depth_m", "float", 0.3, "m", 0.05, 2.0,
           "an open road deeper than this counts as a late closure"),
        _p("walk_speed_mps", "float", 1.2, "m/s", 0.3, 3.0, "walking pace of evacuees"),
        _p("walk_limit_m", "float", 0.5, "m", 0.05, 2.0, "water deeper than this stops people on foot"),
        _p("exposure_depth_m", "float", 0.3, "m", 0.01, 3.0, "residents at home count as exposed above this depth"),
        _p("household_size", "float", HOUSEHOLD_SIZE, "persons", 1.0, 20.0,
           "mean persons per household: a building's residents leave household by household "
           f"(England and Wales, Census 2021: {HOUSEHOLD_SIZE})"),
        _p("prepare_s", "float", 900.0, "s", 0.0, 86400.0, "mean time households take to leave once warned"),
        _p("car_share", "float", 0.6, "", 0.0, 1.0, "share of households that drive (the rest walk)"),
        _p("police_radius_m", "float", 2000.0, "m", 10.0, 1e5, "a post answers for sites within this distance"),
        _p("closure_site_radius_m", "float", 60.0, "m", 0.0, 1000.0,
           "a closure point closes the roads within this distance of it"),
        _p("approach_m", "float", 250.0, "m", 0.0, 5000.0,
           "responders leave their vehicle up to this far from a site (barriers at the water's edge, hoses)"),
    )
    plan_parameters = (
        _p("police_posts", "points", [], "m", help="police posts (x, y in the city CRS)"),
        _p("closure_points", "points", [], "m",
           help="underpasses and dips the police watch (x, y); empty: every road within reach of a post"),
        _p("officers_per_post", "int", 2, "officers", 1, 100, "barriers a post can put up at once"),
        _p("closure_depth_m", "float", 0.3, "m", 0.01, 3.0, "close a road when its water passes this depth"),
        _p("reopen_depth_m", "float", 0.1, "m", 0.0, 3.0, "reopen when the water stays below this depth ..."),
        _p("reopen_after_s", "float", 1800.0, "s", 0.0, 86400.0, "... for this long"),
        _p("police_reaction_s", "float", 300.0, "s", 0.0, 86400.0, "from water over the closure depth to setting off"),
        _p("pump_sites", "points", [], "m", help="hotspots where a pump can stand (x, y), in order of priority"),
        _p("pump_crews", "int", 0, "crews", 0, 200, "truck-mounted pumps with crews"),
        _p("prepositioned", "int", 0, "crews", 0, 200, "crews set up at the first sites from the start"),
        _p("pump_depot", "points", [], "m", help="where the other crews wait (one point)"),
        _p("pump_rate_m3_per_s", "float", 0.25, "m3/s", 0.001, 10.0, "pumping rate of one pump"),
        _p("pump_trigger_depth_m", "float", 0.3, "m", 0.0, 5.0, "send a crew when a site's water passes this"),
        _p("pump_setup_s", "float", 900.0, "s", 0.0, 86400.0, "time to set up a pump on arrival"),
        _p("pump_radius_m", "float", 25.0, "m", 0.0, 1000.0, "a pump draws from the cells within this distance"),
        _p("warning_lead_time_s", "float", 3600.0, "s", 0.0, 172800.0,
           "warn a building this long before the forecast brings water to it"),
        _p("compliance", "float", 0.7, "", 0.0, 1.0, "share of warned households that leave"),
        _p("drainage_return_period_years", "float", 2.0, "years", 0.0, 1000.0,
           "design return period of the drains (0: no drains; needs storm_formula)"),
        _p("shelters", "list", [], help="names of the shelters to open (empty: every shelter with a capacity)"),
    )
    kpi_declarations = (
        Kpi("flooded_area_015_km2", "km2", "max", "lower", "land deeper than 0.15 m (rivers and ponds not counted)"),
        Kpi("flooded_area_03_km2", "km2", "max", "lower", "land deeper than 0.3 m (rivers and ponds not counted)"),
        Kpi("people_exposed", "persons", "final", "lower", "residents at home when water at their door passed the "
                                                           "exposure depth (cumulative)"),
        Kpi("people_evacuated", "persons", "final", "higher", "residents arrived at a shelter"),
        Kpi("people_stranded", "persons", "final", "lower", "complying residents who found no shelter they could reach"),
        Kpi("people_caught", "persons", "final", "lower", "evacuees stopped on their way by water deeper than they "
                                                          "could cross (the vehicle limit; on foot, the walk limit), all "
                                                          "so far: they wait and go on when a way opens"),
        Kpi("roads_impassable_km", "km", "max", "lower", "road deeper than the vehicle limit (lattice links where "
                                                         "the city has no road layer)"),
        Kpi("roads_closed_km", "km", "max", "lower", "road closed by the police"),
        Kpi("late_closures", "sites", "final", "lower", "closure sites whose water passed the danger depth while "
                                                        "they were still open"),
        Kpi("volume_pumped_m3", "m3", "final", "higher", "water removed by pumps"),
        Kpi("volume_drained_m3", "m3", "final", "higher", "water taken by the storm drains (the plan's design "
                                                         "return period; none without storm_formula)"),
        Kpi("mass_error", "", "max", "lower", "relative error of the water balance"),
    )
    inject_kinds = (
        InjectKind("pump_fails", (), help="a pump (the target crew, else the first pumping) stops for good"),
        InjectKind("shelter_closed", (), help="the target shelter takes nobody more"),
    )

    def __init__(self, city: Any, hazard: dict[str, Any], plan: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(city, hazard, plan, **kwargs)
        hz = {p.name: self.hazard.get(p.name, p.default) for p in self.hazard_parameters}
        pl = {p.name: self.plan.get(p.name, p.default) for p in self.plan_parameters}
        self._check(city, hz, pl)
        formula = storm_formula(hz["storm_formula"])
        drainage = None
        if formula is not None and pl["drainage_return_period_years"] > 0:
            drainage = DrainageDesign(formula, float(pl["drainage_return_period_years"]), hz["drain_duration_min"],
                                      hz["runoff_coefficient"])
        design = None
        if hz["design_return_period_years"] > 0:
            design = DesignStorm(hz["storm_formula"], float(hz["design_return_period_years"]),
                                 60.0 * float(hz["design_duration_min"]), float(hz["design_peak_ratio"]))
        common = dict(manning_n=hz["manning_n"], infiltration=hz["infiltration"], drainage=drainage,
                      design_storm=design)
        self.field = FloodField.build(city, coarsen=hz["coarsen"], duration_s=self.horizon_s, **common)
        self._water = self._water_cells(city)
        self._land = self.field.prep.grid.active & ~self._water
        self.network = self._network(city, hz)
        self.vehicle_limit_m = float(hz["vehicle_limit_m"])
        self._link_depth = np.zeros(self.network.n_links)
        self._road_depth = np.zeros(self.network.n_roads)
        self._graph: TravelGraph | None = None  # the vehicles' graph for the water last observed
        self._graph_closed = np.zeros(0, dtype=bool)  # and the barriers it was built with

        self.police = [PolicePost(self, f"post-{i + 1}", int(self.network.nearest_node(x, y)[0]),
                                  pl["officers_per_post"]) for i, (x, y) in enumerate(pl["police_posts"])]
        self.closures = RoadClosures(self.network, ClosureRules(
            pl["closure_depth_m"], pl["reopen_depth_m"], pl["reopen_after_s"], pl["police_reaction_s"],
            hz["danger_depth_m"]), self.police, hz["police_radius_m"],
            closure_sites(self.network, pl["closure_points"], hz["closure_site_radius_m"]), hz["approach_m"])

        self.pumps = self._pumps(hz, pl)
        self.evacuation = self._evacuation(city, hz, pl, common)
        self.max_mass_error = 0.0
        self._observe()

    # ---- set-up ------------------------------------------------------------------------------

    def _check(self, city: Any, hz: dict[str, Any], pl: dict[str, Any]) -> None:
        """Hazard and plan choices that only make sense together; every problem at once."""
        problems = []
        period = hz["design_return_period_years"]
        if period > 0 and hz["storm_formula"] == "none":
            problems.append(Problem("hazard", "design_return_period_years", "a design storm comes from a storm "
                                    f"intensity formula: set storm_formula (one of {', '.join(STORM_FORMULAS)})"))
        elif period > 0 and 1.0 + STORM_FORMULAS[hz["storm_formula"]].C * math.log10(period) <= 0:
            problems.append(Problem("hazard", "design_return_period_years", f"{period:g} years is too short for "
                                    f"the {hz['storm_formula']} formula (1 + C lg P <= 0); take a longer one"))
        if pl["pump_crews"] > pl["prepositioned"] and not pl["pump_depot"]:
            problems.append(Problem("plan", "pump_depot", "crews wait at a depot: give pump_depot = [[x, y]]"))
        if pl["prepositioned"] > len(pl["pump_sites"]):
            problems.append(Problem("plan", "prepositioned", f"{pl['prepositioned']} crews but only "
                                    f"{len(pl['pump_sites'])} pump_sites; list a site for each"))
        if pl["prepositioned"] > pl["pump_crews"]:
            problems.append(Problem("plan", "prepositioned", "more than pump_crews; raise pump_crews"))
        if pl["reopen_depth_m"] > pl["closure_depth_m"]:
            problems.append(Problem("plan", "reopen_depth_m", "must not exceed closure_depth_m"))
        if city.dem is None:
            problems.append(Problem(city.name, "dem", "the city has no terrain; a flood scenario needs a DEM layer"))
        if problems:
            raise InputError(problems)

    def _network(self, city: Any, hz: dict[str, Any]) -> MovementNetwork:
        """The city's roads, else a lattice over the dry land of the flood grid."""
        grid = self.field.prep.grid
        if city.network is not None:
            return MovementNetwork.from_roads(city.network, self.field.cells_at, grid.dx_m)
        return MovementNetwork.lattice(grid.active, self.field.prep.domain.transform, grid.dx_m,
                                       spacing_m=hz["lattice_spacing_m"], speed_mps=hz["lattice_speed_kph"] / 3.6,
                                       uncrossable=self._water)

    def _water_cells(self, city: Any) -> np.ndarray:
        """Rivers and ponds (land class 11), and cells under water at the start."""
        water = np.zeros(self.field.shape, dtype=bool)
        classes = land_classes_on(self.field.prep, city)
        if classes is not None:
            water |= classes == WATER_CLASS
        if self.field.prep.initial_depth_m is not None:
            water |= self.field.prep.initial_depth_m >= 0.1
        return water

    def _pumps(self, hz: dict[str, Any], pl: dict[str, Any]) -> PumpService:
        sites = []
        for i, (x, y) in enumerate(pl["pump_sites"]):
            sites.append(PumpSite(f"site-{i + 1}", self.network.approach(x, y, hz["approach_m"]),
                                  self._disc_cells(x, y, pl["pump_radius_m"])))
        depot = pl["pump_depot"][0] if pl["pump_depot"] else (pl["pump_sites"][0] if pl["pump_sites"] else None)
        depot_node = int(self.network.nearest_node(*depot)[0]) if depot is not None else 0
        crews = [PumpCrew(self, f"pump-{i + 1}", depot_node, pl["pump_rate_m3_per_s"])
                 for i in range(pl["pump_crews"])]
        service = PumpService(self.network, sites, crews, pl["pump_trigger_depth_m"], pl["pump_setup_s"])
        service.preposition(pl["prepositioned"])
        return service

    def _disc_cells(self, x: float, y: float, radius_m: float) -> np.ndarray:
        """Open cells within ``radius_m`` of a point (at least the open cell nearest to it)."""
        centre = int(self.field.cells_at(np.array([x]), np.array([y]))[0])
        rows, cols = self.field.shape
        r0, c0 = divmod(centre, cols)
        dx = self.field.prep.grid.dx_m
        k = int(math.ceil(radius_m / dx))
        rr, cc = np.mgrid[max(r0 - k, 0):min(r0 + k + 1, rows), max(c0 - k, 0):min(c0 + k + 1, cols)]
        near = (np.hypot(rr - r0, cc - c0) * dx <= radius_m) & self.field.prep.grid.active[rr, cc]
        cells = (rr[near] * cols + cc[near]).astype(np.int64)
        return cells if cells.size else np.array([centre], dtype=np.int64)

    def _evacuation(self, city: Any, hz: dict[str, Any], pl: dict[str, Any], common: dict[str, Any]) -> Evacuation:
        rules = EvacuationRules(pl["warning_lead_time_s"], pl["compliance"], hz["prepare_s"], hz["car_share"],
                                hz["walk_speed_mps"], hz["walk_limit_m"], hz["exposure_depth_m"],
                                vehicle_limit_m=float(hz["vehicle_limit_m"]))
        shelters = self._shelters(city, pl["shelters"])
        frame = city.buildings.frame if city.buildings is not None else None
        if frame is None or "residents" not in frame:
            points = np.zeros((0, 2))
            persons = np.zeros(0)
        else:
            persons = np.rint(frame["residents"].to_numpy(dtype=float))
            keep = persons >= 1
            pts = frame.geometry[keep].representative_point()
            points = np.column_stack([pts.x.to_numpy(), pts.y.to_numpy()])
            persons = persons[keep]
        door = self.field.cells_at(points[:, 0], points[:, 1])
        node = self.network.nearest_node(points[:, 0], points[:, 1]) if points.size else np.zeros(0, np.int64)
        arrival = np.full(persons.size, np.inf)
        if persons.size and math.isfinite(rules.lead_time_s) and pl["compliance"] > 0:
            forecast = flood_forecast(city, self.field, factor=hz["forecast_coarsen"], horizon_s=self.horizon_s,
                                      **common)
            arrival = forecast.arrival_at(points[:, 0], points[:, 1])
        building, size = households_in(persons, hz["household_size"])
        households = Households.build(size, door[building], node[building], arrival[building], rules, self.rng)
        return Evacuation(self.network, households, shelters, rules)

    def _shelters(self, city: Any, wanted: list[str]) -> Shelters:
        """Shelter POIs (the city's shelter layers) with a known capacity; the plan may open only some, by name."""
        pois = city.pois.frame[city.pois.frame["shelter"].astype(bool)] if len(city.pois) else None
        names, nodes, caps = [], [], []
        if pois is not None:
            for i, (_, row) in enumerate(pois.iterrows()):
                name = row["name"] if isinstance(row.get("name"), str) else f"{row['kind']} {i + 1}"
                cap = row.get("capacity")
                if cap is None or not np.isfinite(cap) or cap <= 0 or (wanted and name not in wanted):
                    continue
                names.append(name)
                nodes.append(int(self.network.nearest_node(row.geometry.x, row.geometry.y)[0]))
                caps.append(int(cap))
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise InputError(Problem("plan", "shelters", f"no shelter with a capacity called {', '.join(missing)}; "
                                     "names come from the city's shelter layer"))
        return Shelters(names, np.asarray(nodes, dtype=np.int64), np.asarray(caps, dtype=np.int64))

    # ---- the step ------------------------------------------------------------------------------

    def _observe(self) -> None:
        """Water on every link and road now."""
        depth = self.field.sim.h.reshape(-1)
        self._link_depth = self.network.link_depth(depth)
        self._road_depth = self.network.road_depth(self._link_depth)
        self._graph = None

    def _vehicle_graph(self) -> TravelGraph:
        """Driving times on the network as it is now (water and barriers): built again only when the water was
        observed anew or a barrier went up or came down, so that police, pumps and evacuees share its routes."""
        closed = self.closures.closed_links()
        if self._graph is None or not np.array_equal(closed, self._graph_closed):
            time_s = self.network.vehicle_time_s(self._link_depth, closed, self.vehicle_limit_m)
            self._graph, self._graph_closed = self.network.graph(time_s), closed
        return self._graph

    def advance(self) -> None:
        running = self.pumps.running(self.clock_s)
        pumped = self.field.advance(self.step_s, [(c.site.cells, c.rate_m3_per_s) for c in running])
        for crew, volume in zip(running, pumped):
            crew.pumped_m3 += float(volume)
        now = self.clock_s + self.step_s
        self._observe()
        self.closures.update(now, self._road_depth, self._vehicle_graph(), self.note)
        graph = self._vehicle_graph()
        self.pumps.move(now, self.step_s, graph)
        self.pumps.dispatch(now, self.field.sim.h.reshape(-1), graph, self.note)
        self.evacuation.update(now, self.field.sim.h.reshape(-1), self._link_depth, graph,
                               self.closures.closed_links())
        self.max_mass_error = max(self.max_mass_error, abs(self.field.balance.relative_error))

    def compute_kpis(self) -> dict[str, float]:
        h = self.field.sim.h
        area_km2 = self.field.cell_area_m2 / 1e6
        impassable = self._road_depth > self.vehicle_limit_m
        return {
            "flooded_area_015_km2": float((h[self._land] > FLOODED_DEPTHS_M[0]).sum()) * area_km2,
            "flooded_area_03_km2": float((h[self._land] > FLOODED_DEPTHS_M[1]).sum()) * area_km2,
            "people_exposed": self.evacuation.people_exposed(),
            "people_evacuated": self.evacuation.people_evacuated(),
            "people_stranded": self.evacuation.people_stranded(),
            "people_caught": self.evacuation.people_caught(),
            "roads_impassable_km": self.network.road_km(impassable),
            "roads_closed_km": self.closures.closed_km(),
            "late_closures": self.closures.late_count(),
            "volume_pumped_m3": self.field.pumped_m3,
            "volume_drained_m3": self.field.sim.drained_m3,
            "mass_error": abs(self.field.balance.relative_error),
        }

    def frame(self) -> dict[str, np.ndarray]:
        h = self.field.sim.h
        k = max(1, math.ceil(max(h.shape) / FRAME_MAX_CELLS))
        rows, cols = -(-h.shape[0] // k) * k, -(-h.shape[1] // k) * k
        padded = np.zeros((rows, cols))
        padded[:h.shape[0], :h.shape[1]] = h
        depth = padded.reshape(rows // k, k, cols // k, k).max(axis=(1, 3))
        return {"depth_m": depth.astype(np.float16), "site_closed": self.closures.closed.astype(np.uint8),
                "people_sheltered": self.evacuation.people_per_shelter()}

    def inject(self, event: Inject) -> None:
        if event.kind == "pump_fails":
            crews = [c for c in self.pumps.crews if c.state != FAILED]
            chosen = [c for c in crews if c.label == event.target] or [c for c in crews if c.state == "pumping"]
            if chosen:
                chosen[0].state = FAILED
            return
        if event.kind == "shelter_closed":
            sh = self.evacuation.shelters
            if event.target in sh.names:
                i = sh.names.index(event.target)
                sh.capacity[i] = sh.booked[i]
            return
        super().inject(event)
