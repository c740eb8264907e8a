"""The flood response: road closures, pumps, evacuation, and the whole model on the Carlisle sample."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from models.flood.evacuation import (CAUGHT, SHELTERED, STRANDED, TRAVELLING, Evacuation, EvacuationRules, Households,
                                     Shelters, households_in)
from models.flood.field import FloodField
from models.flood.hydraulics import FloodGrid, Simulation
from models.flood.movement import MovementNetwork, flooded_speed_limit_mps
from models.flood.police import ClosureRules, PolicePost, RoadClosures, closure_sites
from models.flood.sources import SurfaceSinks
from twin.sim.runner import run_scenario
from twin.sim.scenario import read_scenario

ROOT = Path(__file__).resolve().parent.parent
CARLISLE_SCENARIO = ROOT / "scenarios" / "flood_carlisle.toml"


class _Host:
    """What a Mesa agent needs of its model (a registry of agents) without a whole flood model."""

    def __init__(self) -> None:
        from mesa import Model

        self.model = Model(seed=0)


def _lattice(rows: int = 5, cols: int = 8, cell_m: float = 10.0) -> MovementNetwork:
    return MovementNetwork.lattice(np.ones((rows, cols), dtype=bool), Affine(cell_m, 0, 0, 0, -cell_m, rows * cell_m),
                                   cell_m, spacing_m=cell_m, speed_mps=10.0)


# ----------------------------------------------------------------------------- movement


def test_lattice_links_both_ways_and_roads_once() -> None:
    net = _lattice(3, 4)
    assert net.n_nodes == 12
    # 4-neighbour: 3*3 + 2*4 = 17, diagonals 2 * 2*3 = 12: 29 roads, each a link each way
    assert net.n_roads == 29 and net.n_links == 58
    assert net.road_km(np.ones(net.n_roads, dtype=bool)) == pytest.approx((17 * 10 + 12 * 10 * math.sqrt(2)) / 1000)


def test_lattice_crosses_no_river() -> None:
    river = np.zeros((5, 8), dtype=bool)
    river[:, 4] = True
    net = MovementNetwork.lattice(np.ones((5, 8), dtype=bool), Affine(10, 0, 0, 0, -10, 50), 10.0,
                                  spacing_m=10.0, speed_mps=10.0, uncrossable=river)
    west = net.node_xy[:, 0] < 40
    times = net.times_from(np.array([int(np.flatnonzero(west)[0])]), net.length_m / net.free_speed_mps)[0]
    assert np.all(np.isfinite(times[west])) and np.all(np.isinf(times[~west]))


def test_flooded_speed_follows_pregnolato_and_stops_at_0_3_m() -> None:
    v = flooded_speed_limit_mps(np.array([0.0, 0.1, 0.2, 0.299, 0.3, 1.0]))
    assert v[0] == pytest.approx(86.9448 / 3.6)
    assert v[1] == pytest.approx((0.0009 * 100 ** 2 - 0.5529 * 100 + 86.9448) / 3.6)
    assert np.all(np.diff(v[:4]) < 0) and v[4] == 0 and v[5] == 0
    net = _lattice()
    depth = np.zeros(net.n_links)
    depth[0] = 0.31
    t = net.vehicle_time_s(depth)
    assert math.isinf(t[0]) and t[1] == pytest.approx(net.length_m[1] / 10.0)


def test_water_and_times_per_link_follow_the_cells_and_the_curve() -> None:
    net = _lattice()
    rng = np.random.default_rng(5)
    depth = rng.uniform(0.0, 0.4, size=5 * 8)
    per_link = net.link_depth(depth)
    for link in range(net.n_links):  # the deepest of the cells each link crosses
        cells = net.cell_idx[net.cell_ptr[link]:net.cell_ptr[link + 1]]
        assert per_link[link] == depth[cells].max()
    per_road = net.road_depth(per_link)
    for road in range(net.n_roads):
        assert per_road[road] == per_link[net.road_of_link == road].max()
    closed = rng.random(net.n_links) < 0.2
    speed = np.minimum(net.free_speed_mps, flooded_speed_limit_mps(per_link))
    expected = np.where((per_link > 0.3) | closed | (speed <= 0), np.inf, net.length_m / np.maximum(speed, 1e-12))
    assert np.array_equal(net.vehicle_time_s(per_link, closed), expected)
    assert np.isinf(net.vehicle_time_s(per_link, closed)[closed]).all()


# ----------------------------------------------------------------------------- closures


def _closures(net: MovementNetwork, *, reaction_s: float = 0.0, close_m: float = 0.3) -> RoadClosures:
    host = _Host()
    post = PolicePost(host.model, "post-1", node=0, officers=1)
    return RoadClosures(net, ClosureRules(close_depth_m=close_m, reopen_depth_m=0.1, reopen_after_s=600.0,
                                          reaction_s=reaction_s, danger_depth_m=0.3), [post], radius_m=1e6,
                        approach_m=6.0)


def test_a_road_closes_when_and_only_when_its_water_passes_the_threshold() -> None:
    net = _lattice()
    roads = _closures(net)
    free = net.graph(net.length_m / net.free_speed_mps)
    road = int(net.road_of_link[np.flatnonzero(net.link_u == 0)[0]])  # starts at the post: no drive
    walk_s = 5.0 / 1.4  # from the post's node to the road's midpoint
    depth = np.zeros(net.n_roads)
    for t, d in enumerate([0.0, 0.1, 0.2, 0.3, 0.29999]):
        depth[road] = d
        roads.update(60.0 * t, depth, free)
        assert not roads.closed.any() and np.all(np.isinf(roads.pending_at_s)), f"acted at {d} m, not above 0.3 m"
    depth[road] = 0.30001
    roads.update(300.0, depth, free)
    assert roads.pending_at_s[road] == pytest.approx(300.0 + walk_s) and np.isfinite(roads.pending_at_s).sum() == 1
    roads.update(300.0 + walk_s, depth, free)
    assert roads.closed[road] and roads.closed.sum() == 1
    # reopens only after the water has stayed below 0.1 m for 600 s
    for t, d in [(360, 0.2), (420, 0.09), (900, 0.05), (1000, 0.11), (1060, 0.05), (1600, 0.05)]:
        depth[road] = d
        roads.update(float(t), depth, free)
        assert roads.closed[road]
    depth[road] = 0.05
    roads.update(1660.0, depth, free)
    assert not roads.closed[road] and roads.reopenings == 1


def test_a_closure_waits_for_reaction_and_travel_and_an_open_flooded_road_is_late() -> None:
    net = _lattice()
    roads = _closures(net, reaction_s=120.0)
    free = net.graph(net.length_m / net.free_speed_mps)
    far = int(np.argmax(np.hypot(*net.road_midpoints().T)))
    reach = free.times_from(np.array([0]))[0]
    near = np.flatnonzero(np.hypot(*(net.node_xy - net.road_midpoints()[far]).T) <= 6.0)
    travel = min(reach[near] + np.hypot(*(net.node_xy[near] - net.road_midpoints()[far]).T) / 1.4)
    depth = np.zeros(net.n_roads)
    depth[far] = 0.5
    roads.update(0.0, depth, free)
    assert not roads.closed[far] and roads.pending_at_s[far] == pytest.approx(120.0 + travel)
    assert roads.late_count() == 1 and roads.late[far]
    roads.update(119.0 + travel, depth, free)
    assert not roads.closed[far]
    roads.update(120.0 + travel, depth, free)
    assert roads.closed[far]


def test_roads_beyond_every_post_are_never_closed() -> None:
    net = _lattice()
    host = _Host()
    roads = RoadClosures(net, ClosureRules(reaction_s=0.0), [PolicePost(host.model, "p", 0, 1)], radius_m=15.0)
    depth = np.full(net.n_roads, 1.0)
    for t in range(0, 600, 10):  # one officer: barriers go up one after another
        roads.update(float(t), depth, net.graph(net.length_m / net.free_speed_mps))
    near = np.hypot(*(net.road_midpoints() - net.node_xy[0]).T) <= 15.0
    assert np.array_equal(roads.closed, near)


def test_a_closure_point_closes_every_road_near_it_at_once() -> None:
    net = _lattice()
    host = _Host()
    sites = closure_sites(net, [(40.0, 25.0)], site_radius_m=8.0)
    roads = RoadClosures(net, ClosureRules(reaction_s=0.0), [PolicePost(host.model, "p", 0, 1)], radius_m=1e6,
                         sites=sites)
    assert len(sites) == 1 and sites[0].size >= 2
    depth = np.zeros(net.n_roads)
    depth[sites[0][0]] = 0.4  # one of the site's roads floods: the whole site closes
    # every link within 15 m of the point is under water: officers stop at the edge and walk in
    mid = 0.5 * (net.node_xy[net.link_u] + net.node_xy[net.link_v])
    link_depth = np.where(np.hypot(mid[:, 0] - 40.0, mid[:, 1] - 25.0) <= 15.0, 0.4, 0.0)
    graph = net.graph(net.vehicle_time_s(link_depth))
    assert np.isinf(graph.times_from(np.array([0]))[0][net.nearest_node(40.0, 25.0)[0]])
    for t in range(0, 300, 10):
        roads.update(float(t), depth, graph)
    assert roads.closed[0] and np.array_equal(np.flatnonzero(roads.closed_roads()), np.sort(sites[0]))
    assert net.road_km(roads.closed_roads()) == pytest.approx(roads.closed_km())


def test_routes_follow_the_quickest_links_and_avoid_closed_ones() -> None:
    net = _lattice(4, 6)
    time = net.length_m / net.free_speed_mps
    src, dst = 0, net.n_nodes - 1
    route = net.route(src, dst, time)
    assert route.nodes[0] == src and route.nodes[-1] == dst
    assert np.array_equal(net.link_u[route.links], route.nodes[:-1])
    assert np.array_equal(net.link_v[route.links], route.nodes[1:])
    assert route.time_s == pytest.approx(time[route.links].sum()) == pytest.approx(
        net.times_from(np.array([src]), time)[0][dst])
    blocked = time.copy()
    blocked[route.links[1]] = np.inf
    detour = net.route(src, dst, blocked)
    assert route.links[1] not in detour.links and detour.time_s >= route.time_s


# ----------------------------------------------------------------------------- pumps


def _pool(depth_m: float, cells: int = 10) -> FloodField:
    grid = FloodGrid(np.zeros((cells, cells)), 10.0, manning_n=0.03)
    sim = Simulation(grid, boundary="closed", initial_depth_m=depth_m)
    return FloodField(None, SurfaceSinks(), sim)


def test_a_pump_removes_what_its_rate_says() -> None:
    field = _pool(0.5)
    start = field.sim.storage_m3()
    pump = (np.array([55]), 0.2)
    pumped = sum(field.advance(60.0, [pump])[0] for _ in range(10))
    assert pumped == pytest.approx(0.2 * 600.0, rel=1e-12)
    assert field.sim.storage_m3() == pytest.approx(start - pumped, rel=1e-12)
    assert field.balance.pumped_m3 == pytest.approx(pumped, rel=1e-12)  # its own term, not a surface sink
    assert field.balance.sink_out_m3 == 0.0
    assert abs(field.balance.relative_error) < 1e-12


def test_a_pump_takes_no_more_than_is_there() -> None:
    field = _pool(0.001, cells=4)  # 16 cells x 100 m2 x 1 mm = 1.6 m3
    start = field.sim.storage_m3()
    everything = np.arange(16)
    pumped = sum(field.advance(60.0, [(everything, 1.0)])[0] for _ in range(5))
    assert pumped == pytest.approx(start, rel=1e-12)
    assert field.sim.storage_m3() == pytest.approx(0.0, abs=1e-12)
    assert field.sim.h.min() >= 0.0
    assert abs(field.balance.relative_error) < 1e-12


# ----------------------------------------------------------------------------- evacuation


def test_evacuees_never_exceed_a_shelters_capacity() -> None:
    net = _lattice(6, 6)
    rng = np.random.default_rng(0)
    n = 40
    persons = rng.integers(1, 9, n)
    rules = EvacuationRules(lead_time_s=600.0, compliance=1.0, prepare_s=300.0, car_share=0.5, refresh_s=60.0)
    forecast = rng.uniform(600.0, 3000.0, n)
    hh = Households.build(persons, np.zeros(n, dtype=np.int64), rng.integers(0, net.n_nodes, n), forecast, rules,
                          np.random.default_rng(1))
    shelters = Shelters(["north", "south"], np.array([0, net.n_nodes - 1]), np.array([30, 25]))
    evac = Evacuation(net, hh, shelters, rules)
    depth_links = np.zeros(net.n_links)
    free = net.graph(net.length_m / net.free_speed_mps)
    for t in range(0, 4 * 3600, 60):
        evac.update(float(t), np.zeros(1), depth_links, free, np.zeros(net.n_links, dtype=bool))
        assert np.all(shelters.booked <= shelters.capacity)
        inside = np.bincount(hh.shelter[hh.state == SHELTERED], weights=hh.persons[hh.state == SHELTERED],
                             minlength=2)
        assert np.all(inside <= shelters.capacity)
    assert not np.any(hh.state == TRAVELLING)
    sheltered = hh.persons[hh.state == SHELTERED].sum()
    assert sheltered == shelters.booked.sum() and sheltered <= 55
    # those left out found no room for the whole household anywhere (room only shrinks)
    stranded = np.flatnonzero(hh.state == STRANDED)
    assert stranded.size and np.all(persons[stranded] > shelters.room.max())


def test_buildings_hold_households_of_the_mean_size_that_add_up_to_their_residents() -> None:
    residents = np.array([0, 1, 2, 3, 7, 21, 443])
    building, persons = households_in(residents, 2.36)
    assert np.array_equal(np.bincount(building, weights=persons, minlength=residents.size), residents)
    count = np.bincount(building, minlength=residents.size)
    assert count.tolist() == [0, 1, 1, 1, 3, 9, 188]  # round(P / 2.36), at least one where anyone lives
    for b in range(residents.size):
        sizes = persons[building == b]
        assert sizes.size == 0 or (sizes.min() >= 1 and sizes.max() - sizes.min() <= 1)
    assert np.all(np.diff(building) >= 0)  # households in the buildings' order
    with pytest.raises(ValueError):
        households_in(np.array([-1]))


def test_a_block_of_flats_fills_a_shelter_household_by_household() -> None:
    net = _lattice(4, 4)
    rules = EvacuationRules(lead_time_s=0.0, compliance=1.0, prepare_s=0.0, refresh_s=600.0)
    building, persons = households_in(np.array([21]), 3.0)  # seven households of three
    n = persons.size
    hh = Households.build(persons, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n), rules,
                          np.random.default_rng(0))
    shelters = Shelters(["school"], np.array([net.n_nodes - 1]), np.array([10]))
    evac = Evacuation(net, hh, shelters, rules)
    free = net.graph(net.length_m / net.free_speed_mps)
    for t in range(0, 3600, 60):
        evac.update(float(t), np.zeros(1), np.zeros(net.n_links), free, np.zeros(net.n_links, dtype=bool))
    assert evac.people_evacuated() == 9 and shelters.booked[0] == 9  # three households: a fourth would not fit
    assert evac.people_stranded() == 12


def test_stranded_households_set_off_once_a_way_opens() -> None:
    net = MovementNetwork.lattice(np.ones((3, 6), dtype=bool), Affine(10, 0, 0, 0, -10, 30), 10.0,
                                  spacing_m=10.0, speed_mps=10.0)
    rules = EvacuationRules(lead_time_s=0.0, compliance=1.0, prepare_s=0.0, refresh_s=600.0)
    hh = Households.build(np.array([4]), np.zeros(1, dtype=np.int64), net.nearest_node(5.0, 15.0), np.zeros(1),
                          rules, np.random.default_rng(0))
    shelters = Shelters(["east"], net.nearest_node(55.0, 15.0), np.array([10]))
    evac = Evacuation(net, hh, shelters, rules)
    x_mid = 0.5 * (net.node_xy[net.link_u, 0] + net.node_xy[net.link_v, 0])
    flooded = np.where((x_mid > 25.0) & (x_mid < 40.0), 1.0, 0.0)  # water across the middle of the town
    cut = net.graph(net.vehicle_time_s(flooded))
    evac.update(0.0, np.zeros(1), flooded, cut, np.zeros(net.n_links, dtype=bool))
    assert hh.state[0] == STRANDED and shelters.booked[0] == 0
    dry = np.zeros(net.n_links)
    evac.update(300.0, np.zeros(1), dry, net.graph(net.vehicle_time_s(dry)), np.zeros(net.n_links, dtype=bool))
    assert hh.state[0] == STRANDED  # travel times are renewed every 600 s
    evac.update(600.0, np.zeros(1), dry, net.graph(net.vehicle_time_s(dry)), np.zeros(net.n_links, dtype=bool))
    assert hh.state[0] == TRAVELLING and shelters.booked[0] == 4


def _one_household_crossing_town(car_share: float) -> tuple[MovementNetwork, Households, Shelters, Evacuation]:
    """Four people at the west end of a 60 m town, a shelter at the east end, links of 10 m at 1 m/s by car."""
    net = MovementNetwork.lattice(np.ones((3, 6), dtype=bool), Affine(10, 0, 0, 0, -10, 30), 10.0,
                                  spacing_m=10.0, speed_mps=1.0)
    rules = EvacuationRules(lead_time_s=0.0, compliance=1.0, prepare_s=0.0, car_share=car_share, walk_speed_mps=1.0,
                            refresh_s=600.0, vehicle_limit_m=0.3, walk_limit_m=0.5)
    hh = Households.build(np.array([4]), np.zeros(1, dtype=np.int64), net.nearest_node(5.0, 15.0), np.zeros(1),
                          rules, np.random.default_rng(0))
    shelters = Shelters(["east"], net.nearest_node(55.0, 15.0), np.array([10]))
    return net, hh, shelters, Evacuation(net, hh, shelters, rules)


def _water_on_link_at(net: MovementNetwork, x_mid_m: float, depth_m: float) -> np.ndarray:
    x_mid = 0.5 * (net.node_xy[net.link_u, 0] + net.node_xy[net.link_v, 0])
    y_mid = 0.5 * (net.node_xy[net.link_u, 1] + net.node_xy[net.link_v, 1])
    return np.where(np.isclose(x_mid, x_mid_m) & np.isclose(y_mid, 15.0), depth_m, 0.0)


def _step(evac: Evacuation, net: MovementNetwork, t: float, link_depth: np.ndarray) -> None:
    no_barriers = np.zeros(net.n_links, dtype=bool)
    evac.update(t, np.zeros(1), link_depth, net.graph(net.vehicle_time_s(link_depth)), no_barriers)


def test_a_car_driving_into_water_deeper_than_the_vehicle_limit_is_caught_there() -> None:
    net, hh, shelters, evac = _one_household_crossing_town(car_share=1.0)
    dry = np.zeros(net.n_links)
    _step(evac, net, 0.0, dry)
    assert hh.state[0] == TRAVELLING and hh.arrive_at_s[0] == pytest.approx(50.0) and shelters.booked[0] == 4
    ahead = _water_on_link_at(net, 40.0, 0.4)  # the link from x 35 to 45, which the car takes from t 30 to 40
    _step(evac, net, 20.0, ahead)
    assert hh.state[0] == TRAVELLING  # not there yet
    _step(evac, net, 40.0, ahead)
    assert hh.state[0] == CAUGHT and shelters.booked[0] == 0  # its places are given back
    assert hh.at_node[0] == net.nearest_node(35.0, 15.0)  # stopped where the deep link starts
    assert evac.people_caught() == 4 and evac.people_evacuated() == 0
    _step(evac, net, 120.0, dry)
    assert hh.state[0] == CAUGHT and evac.people_evacuated() == 0  # travel times are renewed every 600 s
    _step(evac, net, 600.0, ahead)  # with the times renewed, it sets off again from there, round the water
    assert hh.state[0] == TRAVELLING and shelters.booked[0] == 4
    evac.legs.join()
    assert evac.legs.from_node[0] == hh.at_node[0] and not np.any(ahead[evac.legs.link] > 0)
    detour = net.graph(net.vehicle_time_s(ahead)).times_from(hh.at_node[:1])[0, shelters.node[0]]
    assert detour > 20.0 and hh.arrive_at_s[0] == pytest.approx(600.0 + detour)
    _step(evac, net, 600.0 + detour, ahead)
    assert evac.people_evacuated() == 4 and evac.people_caught() == 4  # caught counts everyone ever caught


def test_caught_evacuees_wait_while_water_cuts_every_way() -> None:
    net, hh, shelters, evac = _one_household_crossing_town(car_share=1.0)
    _step(evac, net, 0.0, np.zeros(net.n_links))
    x_mid = 0.5 * (net.node_xy[net.link_u, 0] + net.node_xy[net.link_v, 0])
    across = np.where((x_mid > 35.0) & (x_mid < 45.0), 0.5, 0.0)  # water across the whole town at x 40
    _step(evac, net, 40.0, across)
    assert hh.state[0] == CAUGHT
    _step(evac, net, 600.0, across)
    assert hh.state[0] == CAUGHT and shelters.booked[0] == 0  # no way: it waits, holding no places
    dry = np.zeros(net.n_links)
    _step(evac, net, 1200.0, dry)
    assert hh.state[0] == TRAVELLING and hh.arrive_at_s[0] == pytest.approx(1220.0)  # the last 20 m
    _step(evac, net, 1220.0, dry)
    assert evac.people_evacuated() == 4 and evac.people_caught() == 4


def test_water_behind_a_car_or_below_the_limit_lets_it_arrive() -> None:
    net, hh, shelters, evac = _one_household_crossing_town(car_share=1.0)
    _step(evac, net, 0.0, np.zeros(net.n_links))
    _step(evac, net, 20.0, _water_on_link_at(net, 40.0, 0.25))  # shallower than the vehicle limit
    _step(evac, net, 40.0, _water_on_link_at(net, 10.0, 1.0))  # deep, on the first link, passed from t 0 to 10
    _step(evac, net, 60.0, _water_on_link_at(net, 10.0, 1.0))
    assert hh.state[0] == SHELTERED and evac.people_caught() == 0 and evac.people_evacuated() == 4


def test_people_on_foot_wade_water_that_stops_a_car_but_not_deeper() -> None:
    for depth_m, caught in ((0.4, False), (0.6, True)):
        net, hh, shelters, evac = _one_household_crossing_town(car_share=0.0)
        _step(evac, net, 0.0, np.zeros(net.n_links))
        for t in (20.0, 40.0, 60.0):
            _step(evac, net, t, _water_on_link_at(net, 40.0, depth_m))
        assert (hh.state[0] == CAUGHT) == caught, depth_m
        assert evac.people_caught() == (4 if caught else 0) and evac.people_evacuated() == (0 if caught else 4)


def test_warnings_come_lead_time_before_the_forecast_and_only_compliers_leave() -> None:
    rules = EvacuationRules(lead_time_s=1800.0, compliance=0.5, prepare_s=0.0)
    n = 2000
    forecast = np.full(n, 5000.0)
    forecast[:10] = np.inf
    hh = Households.build(np.ones(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), forecast, rules,
                          np.random.default_rng(4))
    assert np.all(hh.warn_at_s[10:] == 3200.0) and np.all(np.isinf(hh.warn_at_s[:10]))
    assert 0.45 < hh.complies.mean() < 0.55
    again = Households.build(np.ones(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), forecast, rules,
                             np.random.default_rng(4))
    assert np.array_equal(hh.complies, again.complies)


# ----------------------------------------------------------------------------- the scenario


def _quick_scenario(tmp_path: Path, horizon_s: int = 7200) -> Path:
    """The Carlisle scenario on 80 m cells for two hours, without its inject (its plans unchanged)."""
    path = tmp_path / "quick.toml"
    base = Path(os.path.relpath(CARLISLE_SCENARIO, tmp_path))
    city = Path(os.path.relpath(ROOT / "gis_data" / "carlisle", tmp_path))
    path.write_text(f'extends = "{base.as_posix()}"\ninjects = []\n\n[scenario]\ncity = "{city.as_posix()}"\n'
                    f"horizon_s = {horizon_s}\nreport_every_s = 1800\nreplications = 1\n\n"
                    "[hazard]\ncoarsen = 16\nforecast_coarsen = 1\nlattice_spacing_m = 80.0\n")
    return path


def test_carlisle_scenario_reads_and_the_analyst_file_extends_it() -> None:
    trainer = read_scenario(CARLISLE_SCENARIO)
    analyst = read_scenario(ROOT / "scenarios" / "flood_carlisle_analyst.toml")
    assert trainer.model == "flood" and set(trainer.plans) == {"A", "B"}
    assert trainer.hazard["coarsen"] == 4 and analyst.hazard["coarsen"] == 1
    assert analyst.plans["B"].parameters == trainer.plans["B"].parameters
    assert analyst.base_path == CARLISLE_SCENARIO.resolve() and analyst.file_hash != trainer.file_hash


@pytest.fixture(scope="module")
def carlisle_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flood")
    scenario = _quick_scenario(folder)
    return scenario, run_scenario(scenario, out=folder / "store", workers=1)


def test_carlisle_plans_run_through_the_framework(carlisle_runs) -> None:
    scenario, store = carlisle_runs
    sc = read_scenario(scenario)
    assert (store.path / "flood_carlisle.toml").is_file()
    for plan in ("A", "B"):
        kpis = store.kpis(plan, 0)
        assert list(kpis["time_s"]) == [0.0, 1800.0, 3600.0, 5400.0, 7200.0]
        assert kpis["mass_error"].max() < 1e-6
        assert kpis["flooded_area_03_km2"].iloc[-1] > 0
        assert np.all(np.diff(kpis["people_exposed"]) >= 0) and np.all(np.diff(kpis["late_closures"]) >= 0)
        crews = sc.plans[plan].parameters["pump_crews"]
        assert 0 <= kpis["volume_pumped_m3"].iloc[-1] <= crews * 0.25 * 7200 + 1e-9
        frames = store.frames(plan, 0)
        assert frames["depth_m"].shape[0] == 5 and frames["depth_m"].dtype == np.float16
    # plan B pre-positions two pumps at hotspots that flood within the two hours: it pumps, plan A's crews wait
    assert store.kpis("B", 0)["volume_pumped_m3"].iloc[-1] > store.kpis("A", 0)["volume_pumped_m3"].iloc[-1]


def test_carlisle_same_seed_same_result(carlisle_runs, tmp_path: Path) -> None:
    scenario, store = carlisle_runs
    again = run_scenario(scenario, out=tmp_path / "again", plans=["B"], workers=1)
    import pandas as pd

    pd.testing.assert_frame_equal(again.kpis("B", 0), store.kpis("B", 0), check_exact=True)
    assert again.log("B", 0) == store.log("B", 0)


@pytest.mark.parametrize("step_s", [60.0, 450.0])
def test_a_design_storm_rains_the_formulas_depth_on_the_city(tmp_path: Path, step_s: float) -> None:
    """In place of the city's rain series: Beijing's 100-year hour, q = A (1 + C lg P) / (t + b)^n, on every
    open cell of Carlisle (80 m cells), in response steps on the storm's minutes or across them."""
    from models.flood.field import DesignStorm
    from twin.city.city import load_city

    city = load_city(ROOT / "gis_data" / "carlisle", cache_root=tmp_path / "cache")
    field = FloodField.build(city, coarsen=16, duration_s=3600.0, design_storm=DesignStorm("beijing", 100.0, 3600.0))
    assert field.prep.rain.source == "chicago_hyetograph" and field.prep.rain.zone_ids is None
    for _ in range(round(3600.0 / step_s)):
        field.advance(step_s, [])
    depth_m = 2001.0 * (1.0 + 0.811 * 2.0) / (60.0 + 8.0) ** 0.711 * 0.36 / 1000.0  # L/(s ha) -> mm/h, for 1 h
    open_m2 = field.sim.grid.active.sum() * field.cell_area_m2
    assert field.balance.source_in_m3 == pytest.approx(depth_m * open_m2, rel=1e-9)
    assert field.balance.relative_error < 1e-9


def test_a_design_storm_needs_a_storm_formula(tmp_path: Path) -> None:
    from twin.errors import InputError

    scenario = _quick_scenario(tmp_path)
    scenario.write_text(scenario.read_text() + "design_return_period_years = 50.0\n")
    with pytest.raises(InputError, match="design_return_period_years.*set storm_formula"):
        run_scenario(scenario, out=tmp_path / "store", plans=["A"], workers=1)


def test_drains_in_a_scenario_take_water_and_keep_the_balance(tmp_path: Path) -> None:
    """Beijing's 20-year hour on Carlisle (80 m cells), with and without drains sized for its 3-year rain: the
    drains take water, less stands on the land, and the balance closes."""
    from models.flood.field import DesignStorm, DrainageDesign
    from models.flood.sources import STORM_FORMULAS
    from twin.city.city import load_city

    city = load_city(ROOT / "gis_data" / "carlisle", cache_root=tmp_path / "cache")
    storm = DesignStorm("beijing", 20.0, 3600.0)
    runs = [FloodField.build(city, coarsen=16, duration_s=3600.0, design_storm=storm, drainage=drains)
            for drains in (None, DrainageDesign(STORM_FORMULAS["beijing"], 3.0))]
    for field in runs:
        for _ in range(60):
            field.advance(60.0, [])
    dry, drained = runs
    assert dry.sim.drained_m3 == 0.0 and drained.sim.drained_m3 > 0.2 * drained.balance.source_in_m3
    assert drained.balance.storage_m3 < dry.balance.storage_m3 - 0.5 * drained.sim.drained_m3
    assert drained.balance.relative_error < 1e-9 and dry.balance.relative_error < 1e-9


def test_a_plans_drains_show_in_its_kpis(tmp_path: Path) -> None:
    """A Beijing 20-year hour on Carlisle (80 m) with drains sized for 1 year (plan A) and 5 years (plan B):
    the larger drains take more, and less land stands under 0.15 m of water."""
    scenario = _quick_scenario(tmp_path, horizon_s=3600)
    text = scenario.read_text() + ('storm_formula = "beijing"\ndesign_return_period_years = 20.0\n'
                                   "design_duration_min = 60.0\n\n[plans.A]\ndrainage_return_period_years = 1.0\n\n"
                                   "[plans.B]\ndrainage_return_period_years = 5.0\n")
    scenario.write_text(text)
    store = run_scenario(scenario, out=tmp_path / "store", workers=1)
    a, b = store.kpis("A", 0), store.kpis("B", 0)
    assert np.all(np.diff(a["volume_drained_m3"]) >= 0) and a["volume_drained_m3"].iloc[-1] > 0
    assert b["volume_drained_m3"].iloc[-1] > a["volume_drained_m3"].iloc[-1]
    assert b["flooded_area_015_km2"].max() < a["flooded_area_015_km2"].max()
    assert a["mass_error"].max() < 1e-9 and b["mass_error"].max() < 1e-9
