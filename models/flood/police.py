"""Police posts that close flooded roads and underpasses, and open them again.

The police watch closure sites: the plan's closure points (an underpass, a
dip in a main road: every road within ``site_radius_m`` of the point), or,
when the plan names none, every road on its own.  Each site belongs to the
nearest post within ``radius_m``; sites beyond every post are nobody's.
When the water at a site (its deepest road) passes the plan's closure depth,
the post sends an officer: the barriers are up after the reaction time plus
the drive, on the network as it is then, to the best place within
``approach_m`` of the site, and the walk from there (a site the officers
cannot get near waits for the next step).  A closed site opens again once its water has
stayed below the reopening depth for ``reopen_after_s``.

A site whose water passes the danger depth while it is still open is a
*late closure*, whether or not a post answers for it (a plan that watches
fewer places is not better for it); each site counts once (KPI
``late_closures``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mesa import Agent

from models.flood.movement import Approach, MovementNetwork, TravelGraph


@dataclass(frozen=True)
class ClosureRules:
    """When roads close and open: depths (m) and times (s)."""

    close_depth_m: float = 0.3
    reopen_depth_m: float = 0.1
    reopen_after_s: float = 1800.0
    reaction_s: float = 300.0
    danger_depth_m: float = 0.3


class PolicePost(Agent):
    """A post with officers who put up barriers at the sites it answers for, one site per officer at a time."""

    def __init__(self, model: Any, label: str, node: int, officers: int) -> None:
        super().__init__(model)
        self.label = label
        self.node = int(node)
        self.officers = int(officers)
        self.busy_until_s: list[float] = [0.0] * self.officers

    def next_free_s(self, now_s: float) -> tuple[int, float]:
        """(officer, time the officer can leave)."""
        i = int(np.argmin(self.busy_until_s))
        return i, max(now_s, self.busy_until_s[i])


def closure_sites(network: MovementNetwork, points: list[tuple[float, float]], site_radius_m: float
                  ) -> list[np.ndarray]:
    """Roads of each closure point (those within ``site_radius_m``, at least the nearest); every road if none."""
    if not points:
        return [np.array([r]) for r in range(network.n_roads)]
    mid = network.road_midpoints()
    sites = []
    for x, y in points:
        d = np.hypot(mid[:, 0] - x, mid[:, 1] - y)
        roads = np.flatnonzero(d <= site_radius_m)
        sites.append(roads if roads.size else np.array([int(np.argmin(d))]))
    return sites


@dataclass
class RoadClosures:
    """Open/closed state of every closure site and the posts that change it."""

    network: MovementNetwork
    rules: ClosureRules
    posts: list[PolicePost]
    radius_m: float
    sites: list[np.ndarray] | None = None
    approach_m: float = 250.0
    closed: np.ndarray = field(init=False)
    owner: np.ndarray = field(init=False)
    pending_at_s: np.ndarray = field(init=False)
    dry_since_s: np.ndarray = field(init=False)
    late: np.ndarray = field(init=False)
    closures: int = 0
    reopenings: int = 0

    def __post_init__(self) -> None:
        if self.sites is None:
            self.sites = closure_sites(self.network, [], 0.0)
        n = len(self.sites)
        self._roads = np.concatenate(self.sites) if n else np.zeros(0, dtype=np.int64)
        self._ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([s.size for s in self.sites], out=self._ptr[1:])
        self.closed = np.zeros(n, dtype=bool)
        self.pending_at_s = np.full(n, math.inf)
        self.dry_since_s = np.full(n, math.nan)
        self.late = np.zeros(n, dtype=bool)
        self.owner = np.full(n, -1, dtype=np.int64)
        mid = self.network.road_midpoints()
        centre = np.array([mid[s].mean(axis=0) for s in self.sites]) if n else np.zeros((0, 2))
        self._approach: dict[int, Approach] = {}
        self._centre = centre
        if self.posts and n:
            post_xy = self.network.node_xy[[p.node for p in self.posts]]
            d = np.hypot(centre[:, None, 0] - post_xy[None, :, 0], centre[:, None, 1] - post_xy[None, :, 1])
            nearest = np.argmin(d, axis=1)
            within = d[np.arange(n), nearest] <= self.radius_m
            self.owner[within] = nearest[within]

    @property
    def watched(self) -> np.ndarray:
        """Sites some post answers for."""
        return self.owner >= 0

    def site_depth(self, road_depth_m: np.ndarray) -> np.ndarray:
        """Deepest water (m) on each site's roads."""
        if not self._roads.size:
            return np.zeros(0)
        return np.maximum.reduceat(road_depth_m[self._roads], self._ptr[:-1])

    def closed_roads(self) -> np.ndarray:
        """Closed state per road."""
        out = np.zeros(self.network.n_roads, dtype=bool)
        out[self._roads[np.repeat(self.closed, np.diff(self._ptr))]] = True
        return out

    def closed_links(self) -> np.ndarray:
        """Closed state per directed link (for travel times)."""
        return self.closed_roads()[self.network.road_of_link]

    def update(self, now_s: float, road_depth_m: np.ndarray, graph: TravelGraph, note: Any = None) -> None:
        """Send officers to sites past the closure depth, put up barriers that are due, reopen, count late sites."""
        rules = self.rules
        depth = self.site_depth(road_depth_m)
        wanted = ~self.closed & np.isinf(self.pending_at_s) & self.watched & (depth > rules.close_depth_m)
        if wanted.any():
            self._dispatch(np.flatnonzero(wanted), depth, now_s, graph)
        due = ~self.closed & (self.pending_at_s <= now_s + 1e-9)
        if due.any():
            self.closed[due] = True
            self.pending_at_s[due] = math.inf
            self.dry_since_s[due] = math.nan
            self.closures += int(due.sum())
            if note is not None:
                for site in np.flatnonzero(due)[:20]:
                    note("road closed", site=int(site), post=self.posts[self.owner[site]].label,
                         depth_m=round(float(depth[site]), 3))
        self.late |= ~self.closed & (depth > rules.danger_depth_m)

        low = self.closed & (depth < rules.reopen_depth_m)
        self.dry_since_s[self.closed & ~low] = math.nan
        self.dry_since_s[low & np.isnan(self.dry_since_s)] = now_s
        reopen = low & (now_s - self.dry_since_s >= rules.reopen_after_s - 1e-9)
        if reopen.any():
            self.closed[reopen] = False
            self.dry_since_s[reopen] = math.nan
            self.reopenings += int(reopen.sum())

    def _dispatch(self, sites: np.ndarray, depth: np.ndarray, now_s: float, graph: TravelGraph) -> None:
        """Send an officer of each site's post, deepest site first; barriers are up after reaction plus travel."""
        for p in np.unique(self.owner[sites]):
            post = self.posts[int(p)]
            own = sites[self.owner[sites] == p]
            reach = graph.times_from(np.array([post.node]))[0]
            for site in own[np.argsort(-depth[own], kind="stable")]:
                _, travel = self._approach_of(int(site)).best(reach)
                if not math.isfinite(travel):
                    continue  # cut off from the post: try again next step
                officer, leave_s = post.next_free_s(now_s)
                up_s = leave_s + self.rules.reaction_s + travel
                self.pending_at_s[site] = up_s
                post.busy_until_s[officer] = up_s

    def _approach_of(self, site: int) -> Approach:
        """Where officers can stop for a site: nodes within ``approach_m`` of it (made when first needed)."""
        if site not in self._approach:
            x, y = self._centre[site]
            self._approach[site] = self.network.approach(float(x), float(y), self.approach_m)
        return self._approach[site]

    def closed_km(self) -> float:
        """Length of closed road (km)."""
        return self.network.road_km(self.closed_roads())

    def late_count(self) -> int:
        """Sites whose water passed the danger depth while they were open, so far."""
        return int(self.late.sum())
