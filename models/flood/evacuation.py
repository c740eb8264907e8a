"""Warnings and evacuation of the households in the city's buildings.

The residents of a building (from the City) live in households of
``household_size`` persons on average (:func:`households_in`), and a
household moves together.  A building is warned ``lead_time_s`` before the
flood forecast says water reaches its door (see
:mod:`models.flood.forecast`); each of its households complies with the
plan's compliance rate on its own, packs for an exponential time of mean
``prepare_s``, then
drives or walks (car share) to the nearest shelter - by travel time over the
network as it is when they leave - that still has room for all of them.
Shelters never take more than their capacity: places are booked when a
household sets off.  A household that finds no shelter it can reach, with
room for all of it, stays home stranded and tries again each time the travel
times are renewed (every ``refresh_s``).  Residents count as exposed when the water at their door
passes ``exposure_depth_m`` while they are at home.

On the way they follow the quickest route of that moment, link by link.
Where water on a link they passed since the last update is deeper than a
vehicle can drive (``vehicle_limit_m``) or than people can wade
(``walk_limit_m``) they are caught: they stop where that link starts, at the
water's edge, and their places in the shelter are given back.  They wait
there and set off again, from that node, when the travel times are renewed
and some shelter with room for them can be reached (no rescue crews are
modelled: the water has to open a way).  Many flood deaths are of people on
the move, in cars above all, so a plan that sends people through rising
water shows it here: ``people_caught`` counts everyone ever caught.

Households are arrays, not one Mesa agent each: tens of thousands of them
stepped in Python would dwarf the hydraulics; the decisions (who leaves,
where to) are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from models.flood.movement import MovementNetwork, TravelGraph

HOME, TRAVELLING, SHELTERED, STRANDED, CAUGHT = 0, 1, 2, 3, 4

#: Mean persons per household in England and Wales (Census 2021).
HOUSEHOLD_SIZE = 2.36


def households_in(residents: np.ndarray, mean_size: float = HOUSEHOLD_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(building of each household, its persons) for whole numbers of ``residents`` per building.

    A building of P residents holds max(1, round(P / mean_size)) households,
    whose sizes differ by at most one and add up to P: a block of flats
    empties household by household, as shelters fill, where one group of
    its hundreds of residents would find no shelter with room for all.
    Buildings without residents hold none.
    """
    persons = np.asarray(residents, dtype=np.int64)
    if np.any(persons < 0) or not mean_size > 0:
        raise ValueError("residents must be >= 0 and the mean household size > 0")
    count = np.where(persons > 0, np.maximum(1, np.rint(persons / mean_size)), 0).astype(np.int64)
    building = np.repeat(np.arange(persons.size), count)
    first = np.cumsum(count) - count  # index of each building's first household
    rank = np.arange(building.size) - first[building]
    base, extra = np.divmod(persons[building], count[building])
    return building, base + (rank < extra)


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
    vehicle_limit_m: float = 0.3


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
    """The households of the residential buildings: persons, door cell, node, warning and what they do."""

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
    at_node: np.ndarray = field(init=False)
    """Where a household sets off from: its home's node, or where water stopped it."""
    ever_caught: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.persons.size
        self.state = np.full(n, HOME, dtype=np.int8)
        self.arrive_at_s = np.full(n, math.inf)
        self.shelter = np.full(n, -1, dtype=np.int64)
        self.exposed = np.zeros(n, dtype=bool)
        self.at_node = np.asarray(self.node, dtype=np.int64).copy()
        self.ever_caught = np.zeros(n, dtype=bool)

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


class ShelterTrees:
    """Quickest times (s) and next nodes from every node to each shelter on one graph, each shelter's worked
    out when it is first wanted.

    Once the shelters are full (Carlisle's within four hours of a 30-hour
    storm) no one is sent to them, and their trees were nearly two thirds
    of the evacuation's time.  A tree is the same whenever it is worked out
    on the same graph.  Rows of shelters not yet wanted hold no numbers:
    read only those given to :meth:`need`.
    """

    def __init__(self, graph: TravelGraph, shelter_nodes: np.ndarray) -> None:
        self.graph = graph
        self.shelter_nodes = shelter_nodes
        n = graph.network.n_nodes
        self.time_s = np.empty((shelter_nodes.size, n))
        self.next_node = np.empty((shelter_nodes.size, n), dtype=np.int64)
        self._done = np.zeros(shelter_nodes.size, dtype=bool)

    def need(self, shelters: np.ndarray) -> None:
        """Work out the trees of these shelters (indices) not yet worked out."""
        todo = shelters[~self._done[shelters]]
        if todo.size:
            self.time_s[todo], self.next_node[todo] = self.graph.trees_to(self.shelter_nodes[todo])
            self._done[todo] = True


@dataclass
class Legs:
    """The links travellers take, one row a link: which household, the node it enters the link from, when it
    enters and leaves it (s).

    Departures are gathered and joined to the table once an update, not
    one copy of it per household.
    """

    owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    link: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    from_node: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    enter_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    leave_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _new: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    def add(self, owner: int, links: np.ndarray, from_node: np.ndarray, enter_s: np.ndarray,
            leave_s: np.ndarray) -> None:
        self._new.append((np.full(links.size, owner, dtype=np.int64), links, from_node, enter_s, leave_s))

    def join(self) -> None:
        """Put the departures added since the last call into the table."""
        if self._new:
            parts = [(self.owner, self.link, self.from_node, self.enter_s, self.leave_s), *self._new]
            self.owner, self.link, self.from_node, self.enter_s, self.leave_s = (
                np.concatenate(p) for p in zip(*parts))
            self._new.clear()

    def keep(self, rows: np.ndarray) -> None:
        self.owner, self.link, self.from_node = self.owner[rows], self.link[rows], self.from_node[rows]
        self.enter_s, self.leave_s = self.enter_s[rows], self.leave_s[rows]


@dataclass
class Evacuation:
    """Steps the households: warnings, departures with shelter booking, the way there, arrivals, exposure."""

    network: MovementNetwork
    households: Households
    shelters: Shelters
    rules: EvacuationRules
    _times_at_s: float = -math.inf
    _car: ShelterTrees | None = None
    _walk: ShelterTrees | None = None
    legs: Legs = field(default_factory=Legs)

    def update(self, now_s: float, depth_flat: np.ndarray, link_depth_m: np.ndarray,
               vehicles: TravelGraph, closed_links: np.ndarray) -> None:
        hh, rules = self.households, self.rules
        self._catch(now_s, link_depth_m)
        arrived = (hh.state == TRAVELLING) & (hh.arrive_at_s <= now_s + 1e-9)
        hh.state[arrived] = SHELTERED
        ready = (hh.state == HOME) & hh.complies & (hh.leave_at_s <= now_s + 1e-9)
        waiting = (hh.state == STRANDED) | (hh.state == CAUGHT)
        retry = waiting & (hh.persons <= self.shelters.room.max(initial=0))
        if ready.any() or (retry.any() and self._refresh_due(now_s)):
            if self._refresh_due(now_s):
                self._refresh_times(now_s, link_depth_m, vehicles, closed_links)
                ready |= retry  # with the new travel times, those stranded or caught try again
            leaving = np.flatnonzero(ready)
            for b in leaving[np.lexsort((leaving, hh.leave_at_s[leaving]))]:
                self._set_off(int(b), now_s)
        at_home = (hh.state == HOME) | (hh.state == STRANDED)
        hh.exposed |= at_home & (depth_flat[hh.door_cell] > rules.exposure_depth_m)

    def _catch(self, now_s: float, link_depth_m: np.ndarray) -> None:
        """Stop the travellers who passed, since the last update, a link deeper than they can cross now: each
        where the first such link of its way starts."""
        legs, hh, sh = self.legs, self.households, self.shelters
        legs.join()
        passed = legs.enter_s < now_s  # every leg kept was still ahead or under way at the last update
        limit = np.where(hh.drives[legs.owner], self.rules.vehicle_limit_m, self.rules.walk_limit_m)
        deep = np.flatnonzero(passed & (link_depth_m[legs.link] > limit) & (hh.state[legs.owner] == TRAVELLING))
        deep = deep[np.lexsort((legs.enter_s[deep], legs.owner[deep]))]
        caught, first = np.unique(legs.owner[deep], return_index=True)
        for b in caught:
            sh.booked[hh.shelter[b]] -= hh.persons[b]
        hh.state[caught] = CAUGHT
        hh.ever_caught[caught] = True
        hh.at_node[caught] = legs.from_node[deep[first]]
        hh.shelter[caught] = -1
        hh.arrive_at_s[caught] = math.inf
        legs.keep(np.flatnonzero((legs.leave_s > now_s) & (hh.state[legs.owner] == TRAVELLING)))

    def _refresh_due(self, now_s: float) -> bool:
        return self._car is None or now_s - self._times_at_s >= self.rules.refresh_s - 1e-9

    def _refresh_times(self, now_s: float, link_depth_m: np.ndarray, vehicles: TravelGraph,
                       closed_links: np.ndarray) -> None:
        """Travel times from every node to the shelters, by car and on foot (renewed every ``refresh_s``)."""
        walk = self.network.walk_time_s(link_depth_m, self.rules.walk_speed_mps, self.rules.walk_limit_m,
                                        closed_links)
        nodes = self.shelters.node
        self._car = ShelterTrees(vehicles, nodes)
        self._walk = ShelterTrees(self.network.graph(walk), nodes)
        self._times_at_s = now_s

    def _set_off(self, b: int, now_s: float) -> None:
        """Book the quickest shelter with room for the whole household; else stay home stranded (or, if water
        stopped it on its way, wait there)."""
        hh, sh = self.households, self.shelters
        trees = self._car if hh.drives[b] else self._walk
        assert trees is not None
        fits = sh.room >= hh.persons[b]
        trees.need(np.flatnonzero(fits))
        times = np.where(fits, trees.time_s[:, hh.at_node[b]], np.inf)
        best = int(np.argmin(times))
        if not math.isfinite(times[best]):
            if hh.state[b] != CAUGHT:
                hh.state[b] = STRANDED
            return
        sh.booked[best] += hh.persons[b]
        hh.shelter[b] = best
        hh.state[b] = TRAVELLING
        hh.arrive_at_s[b] = now_s + float(times[best])
        self._follow_route(b, best, now_s)

    def _follow_route(self, b: int, shelter: int, now_s: float) -> None:
        """Book the links of household ``b``'s quickest way to ``shelter``, with when it is on each."""
        hh = self.households
        trees = self._car if hh.drives[b] else self._walk
        assert trees is not None
        next_node, to_go = trees.next_node[shelter], trees.time_s[shelter]
        path = [int(hh.at_node[b])]
        while next_node[path[-1]] >= 0:
            path.append(int(next_node[path[-1]]))
        nodes = np.asarray(path, dtype=np.int64)
        if nodes.size < 2:
            return
        links = trees.graph.links_along(nodes)
        at = now_s + to_go[nodes[0]] - to_go[nodes]  # when the household is at each node
        self.legs.add(b, links, nodes[:-1], at[:-1], at[1:])

    # ---- KPIs ------------------------------------------------------------------------------

    def people_exposed(self) -> int:
        return int(self.households.persons[self.households.exposed].sum())

    def people_evacuated(self) -> int:
        return self.households.count(SHELTERED)

    def people_stranded(self) -> int:
        return self.households.count(STRANDED)

    def people_caught(self) -> int:
        """Evacuees ever stopped by water on their way (whether they went on later or not)."""
        hh = self.households
        return int(hh.persons[hh.ever_caught].sum())

    def people_per_shelter(self) -> np.ndarray:
        """Residents arrived at each shelter (int32, in the shelters' order)."""
        hh = self.households
        inside = hh.state == SHELTERED
        return np.bincount(hh.shelter[inside], weights=hh.persons[inside],
                           minlength=len(self.shelters.names)).astype(np.int32)

