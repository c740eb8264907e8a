"""Warnings and evacuation of the households in the city's buildings.

The residents of a building (from the City) move together.  A building is
warned ``lead_time_s`` before the flood forecast says water reaches its door
(see :mod:`models.flood.forecast`); each household complies with the plan's
compliance rate, packs for an exponential time of mean ``prepare_s``, then
drives or walks (car share) to the nearest shelter - by travel time over the
network as it is when they leave - that still has room for all of them.
Shelters never take more than their capacity: places are booked when a
household sets off.  A household that finds no shelter it can reach, with
room for all of it, stays home stranded and tries again each time the travel
times are renewed (every ``refresh_s``).  Residents count as exposed when the water at their door
passes ``exposure_depth_m`` while they are at home.

Households are arrays, not one Mesa agent each: 10,000 buildings stepped in
Python would dwarf the hydraulics; the decisions (who leaves, where to) are
the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from models.flood.movement import MovementNetwork, TravelGraph

HOME, TRAVELLING, SHELTERED, STRANDED = 0, 1, 2, 3


@dataclass(frozen=True)
class EvacuationRules:
    lead_time_s: float = 3600.0
    compliance: float = 0.7
    prepare_s: float = 900.0
    car_share: float = 0.6
    walk_speed_mps: float = 1.2
    walk_limit_m: float = 0.5
    exposure_depth_m: float = 0.3
    refresh_s: float = 900.0


@dataclass
class Shelters:
    """Places of safety and the places left in each."""

    names: list[str]
    node: np.ndarray
    capacity: np.ndarray
    booked: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.capacity = np.asarray(self.capacity, dtype=np.int64)
        self.booked = np.zeros(self.capacity.size, dtype=np.int64)

    @property
    def room(self) -> np.ndarray:
        return self.capacity - self.booked


@dataclass
class Households:
    """One household per residential building: persons, door cell, node, warning and what they do."""

    persons: np.ndarray
    door_cell: np.ndarray
    node: np.ndarray
    warn_at_s: np.ndarray
    complies: np.ndarray
    leave_at_s: np.ndarray
    drives: np.ndarray
    state: np.ndarray = field(init=False)
    arrive_at_s: np.ndarray = field(init=False)
    shelter: np.ndarray = field(init=False)
    exposed: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.persons.size
        self.state = np.full(n, HOME, dtype=np.int8)
        self.arrive_at_s = np.full(n, math.inf)
        self.shelter = np.full(n, -1, dtype=np.int64)
        self.exposed = np.zeros(n, dtype=bool)

    @classmethod
    def build(cls, persons: np.ndarray, door_cell: np.ndarray, node: np.ndarray, forecast_arrival_s: np.ndarray,
              rules: EvacuationRules, rng: np.random.Generator) -> Households:
        """Warning times from the forecast; who complies, how long they pack and who drives, from ``rng``."""
        n = persons.size
        warn = np.where(np.isfinite(forecast_arrival_s), np.maximum(forecast_arrival_s - rules.lead_time_s, 0.0),
                        math.inf)
        complies = rng.random(n) < rules.compliance
        prepare = rng.exponential(rules.prepare_s, n) if rules.prepare_s > 0 else np.zeros(n)
        drives = rng.random(n) < rules.car_share
        return cls(persons.astype(np.int64), door_cell, node, warn, complies, warn + prepare, drives)

    def count(self, state: int) -> int:
        return int(self.persons[self.state == state].sum())


@dataclass
class Evacuation:
    """Steps the households: warnings, departures with shelter booking, arrivals, exposure."""

    network: MovementNetwork
    households: Households
    shelters: Shelters
    rules: EvacuationRules
    _times_at_s: float = -math.inf
    _car: np.ndarray | None = None
    _walk: np.ndarray | None = None

    def update(self, now_s: float, depth_flat: np.ndarray, link_depth_m: np.ndarray,
               vehicles: TravelGraph, closed_links: np.ndarray) -> None:
        hh, rules = self.households, self.rules
        arrived = (hh.state == TRAVELLING) & (hh.arrive_at_s <= now_s + 1e-9)
        hh.state[arrived] = SHELTERED
        ready = (hh.state == HOME) & hh.complies & (hh.leave_at_s <= now_s + 1e-9)
        retry = (hh.state == STRANDED) & (hh.persons <= self.shelters.room.max(initial=0))
        if ready.any() or (retry.any() and self._refresh_due(now_s)):
            if self._refresh_due(now_s):
                self._refresh_times(now_s, link_depth_m, vehicles, closed_links)
                ready |= retry  # with the new travel times, those stranded try again
            leaving = np.flatnonzero(ready)
            for b in leaving[np.lexsort((leaving, hh.leave_at_s[leaving]))]:
                self._set_off(int(b), now_s)
        at_home = (hh.state == HOME) | (hh.state == STRANDED)
        hh.exposed |= at_home & (depth_flat[hh.door_cell] > rules.exposure_depth_m)

    def _refresh_due(self, now_s: float) -> bool:
        return self._car is None or now_s - self._times_at_s >= self.rules.refresh_s - 1e-9

    def _refresh_times(self, now_s: float, link_depth_m: np.ndarray, vehicles: TravelGraph,
                       closed_links: np.ndarray) -> None:
        """Travel times from every node to every shelter (renewed every ``refresh_s``)."""
        walk = self.network.walk_time_s(link_depth_m, self.rules.walk_speed_mps, self.rules.walk_limit_m,
                                        closed_links)
        nodes = self.shelters.node
        self._car = vehicles.times_from(nodes, reverse=True)
        self._walk = self.network.graph(walk).times_from(nodes, reverse=True)
        self._times_at_s = now_s

    def _set_off(self, b: int, now_s: float) -> None:
        """Book the quickest shelter with room for the whole household, or stay home stranded."""
        hh, sh = self.households, self.shelters
        times = (self._car if hh.drives[b] else self._walk)[:, hh.node[b]]  # type: ignore[index]
        times = np.where(sh.room >= hh.persons[b], times, np.inf)
        best = int(np.argmin(times))
        if not math.isfinite(times[best]):
            hh.state[b] = STRANDED
            return
        sh.booked[best] += hh.persons[b]
        hh.shelter[b] = best
        hh.state[b] = TRAVELLING
        hh.arrive_at_s[b] = now_s + float(times[best])

    # ---- KPIs ------------------------------------------------------------------------------

    def people_exposed(self) -> int:
        return int(self.households.persons[self.households.exposed].sum())

    def people_evacuated(self) -> int:
        return self.households.count(SHELTERED)

    def people_stranded(self) -> int:
        return self.households.count(STRANDED)

    def people_per_shelter(self) -> np.ndarray:
        """Residents arrived at each shelter (int32, in the shelters' order)."""
        hh = self.households
        inside = hh.state == SHELTERED
        return np.bincount(hh.shelter[inside], weights=hh.persons[inside],
                           minlength=len(self.shelters.names)).astype(np.int32)

