"""A small service queue (M/M/c) for the simulation framework's tests.

Exact continuous-time dynamics inside each clock step, so the step size does
not bias the result and the queue can be checked against queueing theory.
It uses no city data; it only needs a scenario to point at one.
"""

from __future__ import annotations

import math
from collections import deque
from operator import attrgetter
from typing import Any

import numpy as np
from mesa import Agent

from twin.sim.model import Inject, TwinModel
from twin.sim.parameters import InjectKind, Kpi, Parameter


class Customer(Agent):
    """A person who arrives, waits in the shared line and is served once."""

    def __init__(self, model: "QueueModel", arrival_s: float) -> None:
        super().__init__(model)
        self.arrival_s = arrival_s
        self.start_s = math.nan


class Server(Agent):
    """A desk serving one customer at a time; it can be out of order for a while."""

    def __init__(self, model: "QueueModel", label: str) -> None:
        super().__init__(model)
        self.label = label
        self.customer: Customer | None = None
        self.done_s = math.inf
        self.broken_until_s = -math.inf

    def working(self, at_s: float) -> bool:
        return at_s >= self.broken_until_s


_done_s = attrgetter("done_s")


class QueueModel(TwinModel):
    """Customers arrive (Poisson), wait in one line and are served by ``servers`` desks."""

    name = "toy_queue"
    title = "Service queue (test model)"
    hazard_parameters = (
        Parameter("arrival_rate_per_s", "float", 0.5, unit="1/s", minimum=0.0, maximum=10.0,
                  help="mean arrivals per second (Poisson)"),
    )
    plan_parameters = (
        Parameter("servers", "int", 2, unit="desks", minimum=1, maximum=20, help="desks open"),
        Parameter("service_rate_per_s", "float", 0.3, unit="1/s", minimum=0.001, maximum=10.0,
                  help="customers one desk serves per second (exponential service times)"),
    )
    kpi_declarations = (
        Kpi("queue_length", "persons", aggregate="mean", better="lower", help="customers waiting"),
        Kpi("served", "persons", aggregate="final", better="higher", help="customers served so far"),
        Kpi("mean_wait_s", "s", aggregate="final", better="lower", help="mean wait before service"),
    )
    inject_kinds = (
        InjectKind("server_breaks", (
            Parameter("duration_s", "float", 600.0, unit="s", minimum=0.0, maximum=86400.0,
                      help="how long the desk is out of order"),
        ), help="one desk (the target, or the first working one) stops; its customer goes back to the line"),
    )

    def __init__(self, city: Any, hazard: dict[str, Any], plan: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(city, hazard, plan, **kwargs)
        self.arrival_rate_per_s = float(self.hazard.get("arrival_rate_per_s", 0.5))
        self.service_rate_per_s = float(self.plan.get("service_rate_per_s", 0.3))
        self.servers = [Server(self, f"server-{i + 1}") for i in range(int(self.plan.get("servers", 2)))]
        self.line: deque[Customer] = deque()
        self.served = 0
        self.total_wait_s = 0.0
        self.started = 0
        self.next_arrival_s = self._draw(self.arrival_rate_per_s, 0.0)

    def _draw(self, rate_per_s: float, now_s: float) -> float:
        return now_s + self.rng.exponential(1.0 / rate_per_s) if rate_per_s > 0 else math.inf

    def _start_service(self, server: Server, now_s: float) -> None:
        customer = self.line.popleft()
        customer.start_s = now_s
        self.total_wait_s += now_s - customer.arrival_s
        self.started += 1
        server.customer = customer
        server.done_s = self._draw(self.service_rate_per_s, now_s)

    def _fill_idle(self, now_s: float) -> None:
        for server in self.servers:
            if not self.line:
                return
            if server.customer is None and server.working(now_s):
                self._start_service(server, now_s)

    def advance(self) -> None:
        end_s = self.clock_s + self.step_s
        now_s = self.clock_s
        self._fill_idle(now_s)
        repair_s = self._next_repair(now_s)
        while True:
            server = min(self.servers, key=_done_s)
            t = min(self.next_arrival_s, server.done_s, repair_s)
            if t > end_s:
                return
            now_s = t
            if t == self.next_arrival_s:
                self.line.append(Customer(self, t))
                self.next_arrival_s = self._draw(self.arrival_rate_per_s, t)
            elif t == server.done_s:
                server.customer.remove()
                server.customer = None
                server.done_s = math.inf
                self.served += 1
            else:
                repair_s = self._next_repair(now_s)
            self._fill_idle(now_s)

    def _next_repair(self, now_s: float) -> float:
        return min((s.broken_until_s for s in self.servers if s.broken_until_s > now_s), default=math.inf)

    def compute_kpis(self) -> dict[str, float]:
        return {"queue_length": len(self.line), "served": self.served,
                "mean_wait_s": self.total_wait_s / self.started if self.started else 0.0}

    def frame(self) -> dict[str, np.ndarray]:
        """Waiting customers shown shared out over the working desks."""
        working = [s for s in self.servers if s.working(self.clock_s)]
        out = np.zeros(len(self.servers), dtype=np.int16)
        if working:
            base, extra = divmod(len(self.line), len(working))
            for i, server in enumerate(working):
                out[self.servers.index(server)] = base + (1 if i < extra else 0)
        return {"queue_per_server": out}

    def inject(self, event: Inject) -> None:
        if event.kind != "server_breaks":
            super().inject(event)
        now_s = self.clock_s
        if event.target is not None:
            server = next((s for s in self.servers if s.label == event.target), None)
            if server is None:
                raise ValueError(f"no desk {event.target!r}; desks: {', '.join(s.label for s in self.servers)}")
        else:
            server = next((s for s in self.servers if s.working(now_s)), None)
            if server is None:
                return
        if server.customer is not None:
            self.line.appendleft(server.customer)
            self.total_wait_s -= server.customer.start_s - server.customer.arrival_s
            self.started -= 1
            server.customer = None
            server.done_s = math.inf
        duration_s = float(event.parameters.get("duration_s", 600.0))
        server.broken_until_s = max(server.broken_until_s, now_s + duration_s)
