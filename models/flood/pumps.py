"""Pump crews: from the depot over the flooded network to the hotspots, then pumping.

A plan lists pump sites (hotspots such as underpasses) and how many crews it
has.  The first ``prepositioned`` crews start set up at the first sites; the
others wait at the depot and are sent, the nearest by travel time first, to a
site without a pump as soon as the water there passes the trigger depth.  A
crew drives link by link at the speed the water allows (re-routing when a
link ahead is closed or too deep, waiting when no route is left), sets up in
``setup_s`` and then removes ``rate_m3_per_s`` from the cells around the site
- never more than they hold (see :meth:`models.flood.hydraulics.Simulation.withdraw`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from mesa import Agent

from models.flood.movement import Approach, MovementNetwork, Route, TravelGraph

AT_DEPOT, DRIVING, SETTING_UP, PUMPING, FAILED = "at depot", "driving", "setting up", "pumping", "failed"


@dataclass(frozen=True)
class PumpSite:
    """A hotspot: where a truck can stop for it (hoses reach the water) and the flood cells it draws from."""

    label: str
    approach: Approach
    cells: np.ndarray


class PumpCrew(Agent):
    """One truck-mounted pump and its crew."""

    def __init__(self, model: Any, label: str, node: int, rate_m3_per_s: float) -> None:
        super().__init__(model)
        self.label = label
        self.node = int(node)
        self.rate_m3_per_s = float(rate_m3_per_s)
        self.state = AT_DEPOT
        self.site: PumpSite | None = None
        self.route: Route | None = None
        self.leg = 0
        self.on_link_s = 0.0
        self.ready_at_s = math.inf
        self.pumped_m3 = 0.0

    @property
    def free(self) -> bool:
        return self.state == AT_DEPOT

    def set_up_at(self, site: PumpSite, ready_at_s: float) -> None:
        """Stand at ``site`` (pre-positioned, or arrived) and pump from ``ready_at_s``."""
        self.site, self.route = site, None
        self.state = SETTING_UP
        self.ready_at_s = ready_at_s

    def send(self, site: PumpSite, route: Route) -> None:
        self.site, self.route, self.leg, self.on_link_s = site, route, 0, 0.0
        self.state = DRIVING

    def drive(self, now_s: float, step_s: float, graph: TravelGraph, setup_s: float) -> None:
        """Use ``step_s`` seconds of driving at the link times of now; re-route round blocked links."""
        link_time_s, network = graph.time_s, graph.network
        budget = step_s
        assert self.route is not None and self.site is not None
        while budget > 1e-9 and self.state == DRIVING:
            if self.leg >= self.route.links.size:
                self.set_up_at(self.site, now_s + (step_s - budget) + setup_s)
                return
            link = int(self.route.links[self.leg])
            need = link_time_s[link]
            if not math.isfinite(need):
                stop, _ = self.site.approach.best(graph.times_from(np.array([self.node]))[0])
                route = graph.route(self.node, stop)
                if not route.found:
                    return  # wait where it is for the water to drop or a barrier to open
                self.route, self.leg, self.on_link_s = route, 0, 0.0
                continue
            left = need - self.on_link_s
            if budget >= left:
                budget -= left
                self.node = int(network.link_v[link])
                self.leg += 1
                self.on_link_s = 0.0
            else:
                self.on_link_s += budget
                budget = 0.0

    def pumping_now(self, now_s: float) -> bool:
        if self.state == SETTING_UP and now_s + 1e-9 >= self.ready_at_s:
            self.state = PUMPING
        return self.state == PUMPING


@dataclass
class PumpService:
    """Sites, crews and the dispatch rule."""

    network: MovementNetwork
    sites: list[PumpSite]
    crews: list[PumpCrew]
    trigger_depth_m: float
    setup_s: float

    def preposition(self, count: int) -> None:
        """The first ``count`` crews start set up at the first sites (pumping from t = 0)."""
        for crew, site in zip(self.crews[:count], self.sites):
            crew.node = int(site.approach.nodes[np.argmin(site.approach.walk_s)])
            crew.set_up_at(site, 0.0)

    def served(self) -> set[str]:
        return {c.site.label for c in self.crews if c.site is not None and c.state != FAILED}

    def dispatch(self, now_s: float, depth_flat: np.ndarray, graph: TravelGraph, note: Any = None) -> None:
        """Send the nearest free crew to each unserved site whose water passed the trigger, deepest site first."""
        free = [c for c in self.crews if c.free]
        if not free:
            return
        served = self.served()
        calls = [(float(depth_flat[s.cells].max()), i) for i, s in enumerate(self.sites)
                 if s.label not in served and float(depth_flat[s.cells].max()) > self.trigger_depth_m]
        for depth, i in sorted(calls, reverse=True):
            if not free:
                return
            site = self.sites[i]
            ways = [site.approach.best(graph.times_from(np.array([c.node]))[0]) for c in free]
            times = np.array([t for _, t in ways])
            best = int(np.argmin(times))
            if not math.isfinite(times[best]):
                continue  # no crew can get near it now
            crew = free.pop(best)
            crew.send(site, graph.route(crew.node, ways[best][0]))
            if note is not None:
                note("pump crew sent", crew=crew.label, site=site.label, depth_m=round(depth, 3),
                     eta_s=round(float(times[best]), 1))

    def running(self, now_s: float) -> list[PumpCrew]:
        """The crews pumping now."""
        return [c for c in self.crews if c.site is not None and c.pumping_now(now_s)]

    def move(self, now_s: float, step_s: float, graph: TravelGraph) -> None:
        for crew in self.crews:
            if crew.state == DRIVING:
                crew.drive(now_s, step_s, graph, self.setup_s)
