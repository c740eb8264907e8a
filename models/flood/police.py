"""Police posts that close flooded roads and underpasses, and open them again.

Each post answers for the links within ``radius_m`` of it (a link nearer to
another post is that post's).  When the water on one of its links passes the
plan's closure depth, the post sends an officer: the barrier is up after the
reaction time plus the drive there (on the network as it is then; a post
whose officers cannot get there cannot close it).  A closed link opens again
once its water has stayed below the reopening depth for ``reopen_after_s``.

Links that carry water above the danger depth while still open are *late*:
each road counts once, the first time it happens (KPI ``late_closure_km``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mesa import Agent

from models.flood.movement import MovementNetwork


@dataclass(frozen=True)
class ClosureRules:
    """When roads close and open: depths (m) and times (s)."""

    close_depth_m: float = 0.3
    reopen_depth_m: float = 0.1
    reopen_after_s: float = 1800.0
    reaction_s: float = 300.0
    danger_depth_m: float = 0.3


class PolicePost(Agent):
    """A post with officers who put up barriers on the links it answers for, one at a time."""

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


@dataclass
class RoadClosures:
    """Open/closed state of every road (both directions of a street together) and the posts that change it."""

    network: MovementNetwork
    rules: ClosureRules
    posts: list[PolicePost]
    radius_m: float
    closed: np.ndarray = field(init=False)
    owner: np.ndarray = field(init=False)
    pending_at_s: np.ndarray = field(init=False)
    dry_since_s: np.ndarray = field(init=False)
    late: np.ndarray = field(init=False)
    closures: int = 0
    reopenings: int = 0

    def __post_init__(self) -> None:
        n = self.network.n_roads
        self.closed = np.zeros(n, dtype=bool)
        self.pending_at_s = np.full(n, math.inf)
        self.dry_since_s = np.full(n, math.nan)
        self.late = np.zeros(n, dtype=bool)
        self.owner = np.full(n, -1, dtype=np.int64)
        self._first_link = np.zeros(n, dtype=np.int64)
        self._first_link[self.network.road_of_link[::-1]] = np.arange(self.network.n_links)[::-1]
        if self.posts:
            mid = self.network.road_midpoints()
            post_xy = self.network.node_xy[[p.node for p in self.posts]]
            d = np.hypot(mid[:, None, 0] - post_xy[None, :, 0], mid[:, None, 1] - post_xy[None, :, 1])
            nearest = np.argmin(d, axis=1)
            within = d[np.arange(n), nearest] <= self.radius_m
            self.owner[within] = nearest[within]

    def closed_links(self) -> np.ndarray:
        """Closed state per directed link (for travel times)."""
        return self.closed[self.network.road_of_link]

    def update(self, now_s: float, road_depth_m: np.ndarray, vehicle_time_s: np.ndarray,
               note: Any = None) -> None:
        """Send officers to roads past the closure depth, put up barriers that are due, reopen, count late roads."""
        rules = self.rules
        wanted = ~self.closed & np.isinf(self.pending_at_s) & (self.owner >= 0) & (road_depth_m > rules.close_depth_m)
        if wanted.any():
            self._dispatch(np.flatnonzero(wanted), road_depth_m, now_s, vehicle_time_s)
        due = ~self.closed & (self.pending_at_s <= now_s + 1e-9)
        if due.any():
            self.closed[due] = True
            self.pending_at_s[due] = math.inf
            self.dry_since_s[due] = math.nan
            self.closures += int(due.sum())
            if note is not None:
                for road in np.flatnonzero(due)[:20]:
                    note("road closed", road=int(road), post=self.posts[self.owner[road]].label,
                         depth_m=round(float(road_depth_m[road]), 3))
        self.late |= ~self.closed & (road_depth_m > rules.danger_depth_m)

        low = self.closed & (road_depth_m < rules.reopen_depth_m)
        self.dry_since_s[self.closed & ~low] = math.nan
        self.dry_since_s[low & np.isnan(self.dry_since_s)] = now_s
        reopen = low & (now_s - self.dry_since_s >= rules.reopen_after_s - 1e-9)
        if reopen.any():
            self.closed[reopen] = False
            self.dry_since_s[reopen] = math.nan
            self.reopenings += int(reopen.sum())

    def _dispatch(self, roads: np.ndarray, road_depth_m: np.ndarray, now_s: float,
                  vehicle_time_s: np.ndarray) -> None:
        """Send an officer of each road's post, deepest road first; the barrier is up after reaction plus travel."""
        for p in np.unique(self.owner[roads]):
            post = self.posts[int(p)]
            own = roads[self.owner[roads] == p]
            reach = self.network.times_from(np.array([post.node]), vehicle_time_s)[0]
            for road in own[np.argsort(-road_depth_m[own], kind="stable")]:
                link = self._first_link[road]
                ends = (self.network.link_u[link], self.network.link_v[link])
                travel = float(min(reach[ends[0]], reach[ends[1]]))
                if not math.isfinite(travel):
                    continue  # cut off from the post: try again next step
                officer, leave_s = post.next_free_s(now_s)
                up_s = leave_s + self.rules.reaction_s + travel
                self.pending_at_s[road] = up_s
                post.busy_until_s[officer] = up_s

    def closed_km(self) -> float:
        """Length of closed road (km)."""
        return self.network.road_km(self.closed)

    def late_km(self) -> float:
        """Length (km) of the roads that carried water above the danger depth while open, so far."""
        return self.network.road_km(self.late)
