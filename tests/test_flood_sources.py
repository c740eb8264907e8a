"""Rain, infiltration and drainage of the flood model, on the Carlisle sample data and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS
from scipy.optimize import brentq

from models.flood.sources import (
    MM_PER_H_PER_L_PER_S_HA,
    STORM_FORMULAS,
    DrainageSink,
    Infiltration,
    RainSeries,
    SurfaceSinks,
    chicago_cumulative_mm,
    chicago_hyetograph,
    green_ampt_increment_m,
    l_per_s_ha_to_mm_per_h,
    land_class_codes,
    load_infiltration_table,
    mm_per_h_to_m_per_s,
    read_rain_csv,
    storm_intensity_mm_per_h,
    uniform_rain,
)
from twin.errors import InputError
from twin.geo.landclass import load_land_classes, load_value_mapping
from twin.geo.raster import Grid, read_grid

JINAN = STORM_FORMULAS["jinan"]


# ----------------------------------------------------------------------------- Carlisle rain


@pytest.fixture(scope="module")
def carlisle(gis_data):
    folder = gis_data / "carlisle"
    zones = read_grid(folder / "rain_zones.tif", categorical=True)
    return folder, zones, read_rain_csv(folder / "rain.csv", zones)


def test_carlisle_rain_shape_and_times(carlisle):
    _, zones, rain = carlisle
    assert rain.rain_mm_per_h.shape == (322, 67)
    assert list(rain.zone_ids) == list(range(67))
    assert rain.columns[0] == "zone_0" and rain.columns[-1] == "zone_66"
    assert np.all(np.diff(rain.time_s) == 300.0)
    assert rain.start_s == 0.0 and rain.end_s == 96_300.0
    assert not rain.notes  # every zone has cells
    assert np.all(rain.rain_mm_per_h[-1] == 0.0)  # the closing row


def test_carlisle_storm_totals_match_the_readme(carlisle, gis_data):
    _, zones, rain = carlisle
    per_zone = rain.depth_mm_between(0.0, rain.end_s)
    assert round(per_zone.mean(), 1) == 129.6
    assert round(per_zone.min(), 1) == 52.5 and round(per_zone.max(), 1) == 220.4
    dem = read_grid(gis_data / "carlisle" / "dem.tif")
    domain = dem.valid_mask()
    assert round(rain.cell_depth_mm_between(0.0, rain.end_s)[domain].mean(), 1) == 126.6
    # The step integral is the row sums times 300 s.
    assert np.allclose(per_zone, rain.rain_mm_per_h.sum(axis=0) * 300.0 / 3600.0, rtol=1e-12)


def test_carlisle_peaks_match_the_readme(carlisle):
    _, _, rain = carlisle
    row, zone = np.unravel_index(rain.rain_mm_per_h.argmax(), rain.rain_mm_per_h.shape)
    assert round(rain.rain_mm_per_h[row, zone], 2) == 20.22
    assert rain.zone_ids[zone] == 48 and rain.time_s[row] == 53_700.0
    zone_mean = rain.rain_mm_per_h.mean(axis=1)
    assert round(zone_mean.max(), 1) == 10.8 and rain.time_s[zone_mean.argmax()] == 82_500.0


def test_carlisle_cell_rate_is_its_zone_column(carlisle):
    _, zones, rain = carlisle
    for t_s in (0.0, 299.9, 53_700.0, 53_999.0, 82_500.0):
        row = rain.row_at(t_s)
        rate = rain.rate_m_per_s(t_s)
        assert rate.shape == zones.shape and not rate.flags.writeable
        expected = mm_per_h_to_m_per_s(rain.rain_mm_per_h[row][zones.values])
        assert np.array_equal(rate, expected)
    # A few cells one by one: zone 48 at its peak.
    rows, cols = np.nonzero(zones.values == 48)
    rate = rain.rate_m_per_s(53_700.0)
    assert np.allclose(rate[rows[:5], cols[:5]] * 3.6e6, 20.21904)
    # No rain before the first row or from the closing row on.
    assert not rain.rate_m_per_s(-1.0).any() and not rain.rate_m_per_s(96_300.0).any()


def test_depth_between_integrates_partial_steps(carlisle):
    _, _, rain = carlisle
    r = rain.rain_mm_per_h
    got = rain.depth_mm_between(150.0, 750.0)
    assert np.allclose(got, (150.0 * r[0] + 300.0 * r[1] + 150.0 * r[2]) / 3600.0, rtol=1e-12)
    halves = rain.depth_mm_between(0.0, 40_000.0) + rain.depth_mm_between(40_000.0, 200_000.0)
    assert np.allclose(halves, rain.depth_mm_between(-10.0, 1e9), rtol=1e-12)


# ----------------------------------------------------------------------------- bad rain files


def zone_grid(values: list[list[int]]) -> Grid:
    return Grid(values=np.array(values, dtype=np.int32), transform=Affine(5, 0, 0, 0, -5, 10),
                crs=CRS.from_epsg(27700), name="zones", nodata=-1, source="zones.tif")


def test_bad_rain_file_lists_every_problem_with_line_and_column(tmp_path):
    path = tmp_path / "rain.csv"
    path.write_text("time_s,zone_1,zone_2,zone_9\n"
                    "0,1.0,2.0,0\n"
                    "600,1.0,-3.5,0\n"
                    "300,abc,2.0,0\n"
                    "900,0,0,0\n")
    zones = zone_grid([[1, 2], [3, -1]])
    with pytest.raises(InputError) as err:
        read_rain_csv(path, zones)
    problems = err.value.problems
    where = {(p.where, p.message.split(" ")[0]) for p in problems}
    assert all(p.source == str(path) for p in problems)
    assert ("line 3, column zone_2", "-3.5") in where
    assert ("line 4, column zone_1", "'abc'") in where
    assert any(p.where == "line 4, column time_s" and "not after 600" in p.message for p in problems)
    assert any(p.where == "line 1, column zone_3" and "no column for zone 3" in p.message for p in problems)
    # A column with no zone cells is reported alongside.
    assert any(p.where == "line 1, column zone_9" and "no cell" in p.message for p in problems)
    text = str(err.value)
    assert "rain.csv: line 3, column zone_2" in text


def test_rain_file_header_and_last_row_problems(tmp_path):
    path = tmp_path / "rain.csv"
    path.write_text("time_s,zone_1,zone_x\n0,1,1\n300,1,0\n")
    with pytest.raises(InputError) as err:
        read_rain_csv(path, zone_grid([[1, 1]]))
    messages = [(p.where, p.message) for p in err.value.problems]
    assert any(w == "line 1, column zone_x" for w, m in messages)
    assert ("line 3, column zone_1", ) in {(w, ) for w, m in messages if "last row ends the rain" in m}

    path.write_text("t,rain\n0,1\n300,0\n")
    with pytest.raises(InputError, match="line 1: no time_s column"):
        read_rain_csv(path, None)

    path.write_text("time_s,a,b\n0,1,1\n300,0,0\n")
    with pytest.raises(InputError, match="no zone raster"):
        read_rain_csv(path, None)
    path.write_text("time_s,rain\n0,1\n300,0\n400\n")
    with pytest.raises(InputError, match="line 4: 1 values but the header names 2 columns"):
        read_rain_csv(path, None)


def test_uniform_rain_file_with_and_without_zones(tmp_path):
    path = tmp_path / "rain.csv"
    path.write_text("time_s,rain_mm_per_h\n0,36\n3600,0\n")
    alone = read_rain_csv(path)
    assert alone.zone_ids is None and alone.rate_m_per_s(10.0).shape == ()
    assert alone.rate_m_per_s(10.0) == pytest.approx(1e-5)
    assert alone.depth_mm_between(0.0, 1e5)[0] == pytest.approx(36.0)
    zones = zone_grid([[1, 2], [3, -1]])
    placed = read_rain_csv(path, zones)
    assert np.allclose(placed.rate_m_per_s(10.0), [[1e-5, 1e-5], [1e-5, 0.0]])
    on_grid = alone.on_grid((2, 2), mask=zones.valid_mask())
    assert np.array_equal(on_grid.rate_m_per_s(10.0), placed.rate_m_per_s(10.0))
    assert np.allclose(on_grid.cell_depth_mm_between(0, 7200), [[36, 36], [36, 0]])


def test_uniform_rain_holds_for_its_duration():
    rain = uniform_rain(18.0, duration_s=600.0).on_grid((3, 4))
    assert np.allclose(rain.rate_m_per_s(599.0), 5e-6)
    assert not rain.rate_m_per_s(600.0).any()
    forever = uniform_rain(18.0)
    assert forever.depth_mm_between(0.0, 7200.0)[0] == pytest.approx(36.0)
    with pytest.raises(InputError, match="mm_per_h"):
        uniform_rain(-1.0)


# ----------------------------------------------------------------------------- design storms


def test_unit_conversion_of_storm_formulas():
    assert MM_PER_H_PER_L_PER_S_HA == 0.36
    assert l_per_s_ha_to_mm_per_h(100.0) == pytest.approx(36.0)
    q = 1421.481 * (1 + 0.932 * math.log10(3.0)) / (10.0 + 7.347) ** 0.617
    assert JINAN.intensity_mm_per_h(10.0, 3.0) == pytest.approx(0.36 * q, rel=1e-12)
    assert {"jinan", "beijing", "shanghai"} <= set(STORM_FORMULAS)


def idf_depth_mm(duration_min: float, p: float) -> float:
    return JINAN.intensity_mm_per_h(duration_min, p) * duration_min / 60.0


@pytest.mark.parametrize("step_s,duration_s,r", [(60.0, 7200.0, 0.4), (300.0, 7200.0, 0.4), (300.0, 10_800.0, 0.5),
                                                 (60.0, 6000.0, 0.0), (60.0, 6000.0, 1.0)])
def test_chicago_total_equals_idf_depth(step_s, duration_s, r):
    storm = chicago_hyetograph(**JINAN.coefficients(), return_period_years=5, duration_s=duration_s,
                               step_s=step_s, peak_position_r=r)
    total = storm.depth_mm_between(0.0, duration_s)[0]
    assert total == pytest.approx(idf_depth_mm(duration_s / 60.0, 5), rel=1e-6)
    assert storm.meta["total_mm"] == pytest.approx(total, rel=1e-12)
    assert np.all(storm.rain_mm_per_h >= 0) and storm.rain_mm_per_h[-1, 0] == 0.0


@pytest.mark.parametrize("step_s,r", [(60.0, 0.4), (300.0, 0.4), (300.0, 0.5), (60.0, 0.35)])
def test_chicago_windows_hold_the_idf_depth(step_s, r):
    """The wettest run of m steps holds the IDF depth of its width.

    It is exact (1e-9) where the peak lies on a step edge and r m is whole, so the
    window splits at the peak like the storm; otherwise the steps cannot place a
    window there and the wettest run lies between the IDF depths of (m - 1) and m steps.
    """
    duration_s = 7200.0
    storm = chicago_hyetograph(**JINAN.coefficients(), return_period_years=3, duration_s=duration_s,
                               step_s=step_s, peak_position_r=r)
    depth = storm.rain_mm_per_h[:-1, 0] * step_s / 3600.0
    peak_on_edge = abs(r * duration_s / step_s - round(r * duration_s / step_s)) < 1e-9
    exact = 0
    for m in range(1, len(depth) + 1):
        wettest = np.convolve(depth, np.ones(m), "valid").max()
        width_min = m * step_s / 60.0
        upper = idf_depth_mm(width_min, 3)
        lower = idf_depth_mm(width_min - step_s / 60.0, 3) if m > 1 else 0.0
        if peak_on_edge and abs(r * m - round(r * m)) < 1e-9:
            assert wettest == pytest.approx(upper, rel=1e-9)
            exact += 1
        assert lower * (1 - 1e-12) <= wettest <= upper * (1 + 1e-12)
    assert exact >= (4 if peak_on_edge else 0)


def test_chicago_peak_position_and_return_period():
    duration_s, step_s = 7200.0, 60.0
    for r in (0.2, 0.375, 0.4, 0.7):
        storm = chicago_hyetograph(**JINAN.coefficients(), return_period_years=2, duration_s=duration_s,
                                   step_s=step_s, peak_position_r=r)
        k = int(storm.rain_mm_per_h[:, 0].argmax())
        assert storm.time_s[k] <= r * duration_s <= storm.time_s[k + 1]
    p2 = chicago_hyetograph(**JINAN.coefficients(), return_period_years=2, duration_s=duration_s, step_s=step_s)
    p10 = chicago_hyetograph(**JINAN.coefficients(), return_period_years=10, duration_s=duration_s, step_s=step_s)
    ratio = (1 + JINAN.C * math.log10(10)) / (1 + JINAN.C * math.log10(2))
    assert np.allclose(p10.rain_mm_per_h[:-1], ratio * p2.rain_mm_per_h[:-1], rtol=1e-12)
    assert p10.rain_mm_per_h.max() > p2.rain_mm_per_h.max()


def test_chicago_cumulative_is_the_instantaneous_intensity_integrated():
    kw = dict(**JINAN.coefficients(), return_period_years=5, duration_s=7200.0, peak_position_r=0.4)
    a = 0.36 * JINAN.A * (1 + JINAN.C * math.log10(5))
    for s_min in (3.0, 17.0, 40.0):
        tb = 48.0 - s_min  # before the peak (minutes from the start)
        x = s_min / 0.4
        inst = a * ((1 - JINAN.n) * x + JINAN.b) / (x + JINAN.b) ** (1 + JINAN.n)
        h = 1e-3
        slope = (chicago_cumulative_mm((tb + h) * 60, **kw) - chicago_cumulative_mm((tb - h) * 60, **kw)) / (2 * h / 60)
        assert float(slope) == pytest.approx(inst, rel=1e-6)


def test_chicago_rejects_bad_parameters_all_at_once():
    with pytest.raises(InputError) as err:
        chicago_hyetograph(A=-1, C=0.9, b=7, n=1.2, return_period_years=0, duration_s=600, step_s=900,
                           peak_position_r=1.5)
    fields = {p.where for p in err.value.problems}
    assert fields == {"A", "n", "return_period_years", "step_s", "peak_position_r"}


def test_storm_intensity_function_matches_the_formula_table():
    for f in STORM_FORMULAS.values():
        assert storm_intensity_mm_per_h(**f.coefficients(), return_period_years=5, duration_min=30.0) == \
            pytest.approx(f.intensity_mm_per_h(30.0, 5))
        assert f.source


# ----------------------------------------------------------------------------- infiltration


@pytest.fixture(scope="module")
def table():
    return load_infiltration_table()


def test_infiltration_table_covers_the_land_classes(table):
    assert set(table["code"]) == set(load_land_classes()["code"])
    by_code = table.set_index("code")
    for code in ("10", "11"):
        assert by_code.loc[code, ["f0_mm_per_h", "fc_mm_per_h", "Ks_mm_per_h"]].eq(0).all()
    assert (table["f0_mm_per_h"] >= table["fc_mm_per_h"]).all()
    assert table["source"].str.len().gt(20).all()
    # Loam of Rawls et al. (1983): Ks 0.34 cm/h, psi 8.89 cm.
    assert by_code.loc["01", "Ks_mm_per_h"] == 3.4 and by_code.loc["01", "psi_mm"] == 88.9


def test_bad_infiltration_table_names_line_and_column(tmp_path):
    path = tmp_path / "inf.csv"
    path.write_text("code,f0_mm_per_h,fc_mm_per_h,k_per_h,Ks_mm_per_h,psi_mm,delta_theta,source\n"
                    "01,10,20,4,3,88,0.3,x\n"
                    "01,10,2,4,-3,88,1.2,\n"
                    "1x,a,2,4,3,88,0.3,x\n")
    with pytest.raises(InputError) as err:
        load_infiltration_table(path)
    where = {p.where for p in err.value.problems}
    assert {"line 2, column f0_mm_per_h", "line 3, column code", "line 3, column Ks_mm_per_h",
            "line 3, column delta_theta", "line 3, column source", "line 4, column code",
            "line 4, column f0_mm_per_h"} <= where


def ponded(model: str, code: int, hours: float, dt_s: float, table) -> np.ndarray:
    """Cumulative infiltration (m) at each step under deep ponding."""
    inf = Infiltration(model, np.array([code], dtype=np.int16), table)
    depth = np.array([10.0])
    out = []
    for _ in range(int(round(hours * 3600 / dt_s))):
        inf.sink_m_per_s(depth, dt_s)
        out.append(inf.cumulative_m[0])
    return np.array(out)


def test_green_ampt_ponded_matches_the_implicit_equation(table):
    row = table.set_index("code").loc["01"]
    ks = row["Ks_mm_per_h"] / 3.6e6
    s = row["psi_mm"] / 1000 * row["delta_theta"]
    dt_s = 60.0
    got = ponded("green_ampt", 1, 6.0, dt_s, table)
    for k in (0, 9, 59, 359):
        t = (k + 1) * dt_s
        expected = brentq(lambda f: f - s * math.log1p(f / s) - ks * t, 1e-12, 1.0)
        assert got[k] == pytest.approx(expected, rel=0.01)
        assert got[k] == pytest.approx(expected, rel=1e-8)  # the update is exact per step
    # The step length does not matter under ponding.
    coarse = ponded("green_ampt", 1, 6.0, 1800.0, table)
    assert coarse[-1] == pytest.approx(got[-1], rel=1e-9)
    # Tiny steps stay accurate (no cancellation).
    assert green_ampt_increment_m(0.0, s, ks * 1e-3) == pytest.approx(
        brentq(lambda f: f - s * math.log1p(f / s) - ks * 1e-3, 1e-15, 1e-3), rel=1e-6)


def test_horton_ponded_matches_the_closed_form(table):
    row = table.set_index("code").loc["04"]
    f0, fc, k = row["f0_mm_per_h"] / 3.6e6, row["fc_mm_per_h"] / 3.6e6, row["k_per_h"] / 3600
    dt_s = 30.0
    got = ponded("horton", 4, 3.0, dt_s, table)
    t = dt_s * np.arange(1, len(got) + 1)
    expected = fc * t + (f0 - fc) * (1 - np.exp(-k * t)) / k
    assert np.allclose(got, expected, rtol=1e-9)


def test_horton_capacity_follows_infiltrated_water_not_the_clock(table):
    inf = Infiltration("horton", np.array([4, 4], dtype=np.int16), table)
    dt_s = 60.0
    for _ in range(20):  # cell 0 ponded, cell 1 dry
        inf.sink_m_per_s(np.array([1.0, 0.0]), dt_s)
    assert inf.cumulative_m[1] == 0.0
    rate = inf.sink_m_per_s(np.array([1.0, 1.0]), dt_s, advance=False)
    assert rate[1] > rate[0]  # the dry cell still has its full capacity
    f0 = table.set_index("code").loc["04", "f0_mm_per_h"] / 3.6e6
    assert rate[1] <= f0


@pytest.mark.parametrize("model", ["green_ampt", "horton"])
def test_infiltration_never_takes_more_than_the_water_at_hand(model, table):
    rng = np.random.default_rng(7)
    codes = rng.choice([0, 1, 2, 3, 4, 10, 11, 12, 20, -1], size=(40, 50)).astype(np.int16)
    inf = Infiltration(model, codes, table)
    total = np.zeros(codes.shape)
    for _ in range(30):
        depth = rng.choice([0.0, 1e-6, 1e-4, 0.05], size=codes.shape) * rng.random(codes.shape)
        rain = mm_per_h_to_m_per_s(rng.choice([0.0, 5.0, 80.0], size=codes.shape))
        dt_s = float(rng.choice([0.5, 5.0, 60.0]))
        rate = inf.sink_m_per_s(depth, dt_s, rain)
        assert np.all(rate >= 0)
        assert np.all(rate * dt_s <= depth + rain * dt_s + 1e-15)
        total += rate * dt_s
    assert np.allclose(inf.cumulative_m, total, rtol=1e-12, atol=0)
    for code in (10, 11, -1):  # impervious, water, no class
        assert not inf.cumulative_m[codes == code].any()
    assert inf.cumulative_m[codes == 3].mean() > 0


def test_infiltration_accepts_string_codes_and_rejects_unknown_ones(table):
    inf = Infiltration("green_ampt", np.array([["01", "20"], ["11", ""]]), table)
    assert inf.class_index.tolist() == [[1, 8], [6, -1]]
    with pytest.raises(InputError, match="land class 05"):
        Infiltration("green_ampt", np.array([5, 1]), table)
    with pytest.raises(InputError, match="model"):
        Infiltration("scs", np.array([1]), table)


def test_infiltration_on_carlisle_land_cover(gis_data, table):
    folder = gis_data / "carlisle"
    cover = read_grid(folder / "landcover.tif", categorical=True)
    codes = land_class_codes(cover, load_value_mapping(folder / "landcover_classes.csv"))
    assert set(np.unique(codes).tolist()) == {-1, 11, 20}
    assert (codes == 11).sum() == 168_967 and (codes == 20).sum() == 1_755_204
    inf = Infiltration("green_ampt", codes, table)
    depth = np.full(codes.shape, 0.01, dtype=np.float32)
    rate = inf.sink_m_per_s(depth, 10.0)
    assert rate.dtype == np.float32 and rate.shape == codes.shape
    assert not rate[codes == 11].any() and not rate[codes == -1].any()
    assert np.all(rate[codes == 20] > 0)


# ----------------------------------------------------------------------------- drainage


def test_drainage_capacity_from_the_design_storm():
    codes = np.array([[20, 10], [11, 3]], dtype=np.int16)
    sink = DrainageSink.from_design_storm(JINAN, return_period_years=3, duration_min=5.0, runoff_coefficient=0.6,
                                          class_per_cell=codes)
    cap = 0.6 * JINAN.intensity_mm_per_h(5.0, 3)
    assert sink.design["capacity_mm_per_h"] == pytest.approx(cap)
    assert np.allclose(sink.capacity_mm_per_h, [[cap, cap], [0.0, 0.0]])
    deep = sink.sink_m_per_s(np.ones((2, 2)), 1.0)
    assert np.allclose(deep, mm_per_h_to_m_per_s(np.array([[cap, cap], [0.0, 0.0]])))
    # Capped at the water at hand: 1 mm over 60 s plus rain.
    depth = np.full((2, 2), 1e-3)
    rain = mm_per_h_to_m_per_s(10.0)
    shallow = sink.sink_m_per_s(depth, 60.0, rain)
    assert np.allclose(shallow[0], 1e-3 / 60.0 + rain)
    assert not shallow[1].any()
    assert np.allclose(sink.drained_m, deep * 1.0 + shallow * 60.0)
    strings = DrainageSink.from_design_storm(JINAN, return_period_years=3, duration_min=5.0, runoff_coefficient=0.6,
                                             class_per_cell=np.array(["20", "04"]))
    assert strings.capacity_mm_per_h.tolist() == [pytest.approx(cap), 0.0]
    with pytest.raises(InputError) as err:
        DrainageSink.from_design_storm(JINAN, return_period_years=0, duration_min=-5, runoff_coefficient=2,
                                       class_per_cell=codes)
    assert len(err.value.problems) == 3


def test_surface_sinks_share_the_water(table):
    codes = np.array([1, 20, 10, 11], dtype=np.int16)
    sinks = SurfaceSinks(Infiltration("green_ampt", codes, table),
                         DrainageSink.from_design_storm(JINAN, return_period_years=5, duration_min=10.0,
                                                        runoff_coefficient=0.7, class_per_cell=codes))
    depth = np.array([2e-4, 2e-4, 2e-4, 2e-4])
    rain = mm_per_h_to_m_per_s(30.0)
    total = sinks.sink_m_per_s(depth, 10.0, rain)
    assert np.all(total * 10.0 <= depth + rain * 10.0 + 1e-15)
    assert total[3] == 0.0 and total[2] > 0.0
    assert np.allclose(sinks.infiltration.cumulative_m + sinks.drainage.drained_m, total * 10.0)


def test_rain_series_rate_is_cached_per_row():
    rain = RainSeries(np.array([0.0, 60.0, 120.0]), np.array([[3.6], [7.2], [0.0]]), ("r",)).on_grid((2, 2))
    a = rain.rate_m_per_s(1.0)
    assert rain.rate_m_per_s(59.0) is a
    assert np.allclose(rain.rate_m_per_s(60.0), 2e-6)


@pytest.mark.parametrize("model", ["green_ampt", "horton"])
def test_infiltration_into_a_given_buffer_matches_a_new_array(model, table):
    classes = np.array([[4, 4, 4], [4, 4, 4]], dtype=np.int16)
    depth = np.array([[0.0, 1e-4, 0.02], [0.3, 0.0, 1e-6]])
    fresh, reused = Infiltration(model, classes, table), Infiltration(model, classes, table)
    buffer = np.full(depth.shape, np.nan)
    for step in range(5):
        expected = fresh.sink_m_per_s(depth, 2.0, 1e-5)
        got = reused.sink_m_per_s(depth, 2.0, 1e-5, out=buffer)
        assert got is buffer or np.shares_memory(got, buffer)
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(reused.cumulative_m, fresh.cumulative_m)
    with pytest.raises(ValueError, match="out must be"):
        reused.sink_m_per_s(depth, 2.0, out=np.empty(depth.shape, dtype=np.float32))


@pytest.mark.parametrize("model", ["green_ampt", "horton"])
def test_net_rate_is_rain_minus_infiltration_in_one_pass(model, table):
    classes = np.array([4, 4, 4, -1], dtype=np.int16)  # the last cell is outside the domain
    depth = np.array([0.0, 1e-4, 0.05, 0.2])
    rain = np.array([2e-5, 0.0, 1e-5, 3e-5])
    plain, fused = Infiltration(model, classes, table), Infiltration(model, classes, table)
    for _ in range(4):
        expected = rain - plain.sink_m_per_s(depth, 3.0, rain)
        np.testing.assert_array_equal(fused.net_rate_m_per_s(depth, 3.0, rain), expected)
    np.testing.assert_array_equal(fused.cumulative_m, plain.cumulative_m)
    assert expected[3] == rain[3]  # no soil outside the domain: all the rain stays


def test_green_ampt_supply_check_agrees_with_the_solved_capacity():
    """All of the supply soaks in exactly when the step's ponded capacity is at least the supply."""
    from models.flood.sources import _soaks_in, green_ampt_increment_m

    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(3000):
        f1, suction = rng.choice([0.0, 1e-5, 1e-3, 0.05]), rng.uniform(1e-3, 0.3)
        ks_dt = 10 ** rng.uniform(-9, -4)
        capacity = green_ampt_increment_m(f1, suction, ks_dt)
        supply = capacity * rng.choice([0.5, 0.9, 0.999, 1.001, 1.1, 2.0])
        assert _soaks_in(f1, suction, ks_dt, supply) == (supply <= capacity)
        checked += 1
    assert checked == 3000


def test_green_ampt_supply_check_gives_the_full_series_answer_near_ties():
    """The supply check's bounds on h settle a cell only where the full series would settle it the same way."""
    from models.flood.sources import _green_ampt_lhs_m, _soaks_in

    rng = np.random.default_rng(8)
    near = 0
    for _ in range(20000):
        f1, suction = float(rng.choice([0.0, 1e-6, 1e-3, 0.05]) * rng.uniform(0.5, 2)), float(rng.uniform(1e-3, 0.3))
        supply = float((f1 + suction) * 10 ** rng.uniform(-9, -2.9))
        lhs = _green_ampt_lhs_m(supply, f1, suction, 1.0 / (f1 + suction))
        # Ks dt at, just off, or well off the left side: the ties are where bounds could go wrong
        ks_dt = lhs * float(rng.choice([1.0, 1 + 1e-15, 1 - 1e-15, 1 + 1e-10, 1 - 1e-10, 1.5, 0.5]))
        assert _soaks_in(f1, suction, ks_dt, supply) == (lhs <= ks_dt), (f1, suction, ks_dt, supply)
        near += abs(ks_dt / lhs - 1.0) < 1e-9
    assert near > 5000


def _green_ampt_root_50_digits(f1: float, suction: float, ks_dt: float, guess: float):
    """The Green-Ampt step increment by Newton in 50-digit decimals (the reference for the float solve)."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 50
        f1_d, s_d, k_d, u = Decimal(f1), Decimal(suction), Decimal(ks_dt), Decimal(guess)
        big = f1_d + s_d
        for _ in range(80):
            y = u / big
            step = (y * f1_d + s_d * (y - (1 + y).ln()) - k_d) / ((f1_d + s_d * y / (1 + y)) / big)
            u -= step
            if abs(step) < Decimal(10) ** -45 * abs(u):
                break
        return u


def test_green_ampt_increment_is_exact_for_short_and_long_steps():
    """Each path of the solve (series for a wet soil, one Newton step, the loop) is within 1e-12 of a 50-digit root."""
    from decimal import Decimal

    from models.flood.sources import _green_ampt_ponded_m, _green_ampt_short_m

    rng = np.random.default_rng(12)
    paths = {"series": 0, "short": 0, "loop": 0}
    for _ in range(2000):
        f1 = float(rng.choice([0.0, 1e-7, 1e-5, 1e-4, 2e-3, 2e-2, 0.3, 2.0]) * rng.uniform(0.5, 2.0))
        suction, ks_dt = float(rng.uniform(1e-4, 0.5)), float(10 ** rng.uniform(-11, 0))
        u = green_ampt_increment_m(f1, suction, ks_dt)
        exact = _green_ampt_root_50_digits(f1, suction, ks_dt, u)
        assert abs(Decimal(u) - exact) <= Decimal(1e-12) * exact, (f1, suction, ks_dt)
        if f1 > 0.0 and _green_ampt_ponded_m(f1, suction, ks_dt)[1]:
            paths["series"] += 1
        elif _green_ampt_short_m(f1, suction, ks_dt)[1] <= 1e-3:
            paths["short"] += 1
        else:
            paths["loop"] += 1
    assert min(paths.values()) > 300, paths


def test_green_ampt_series_path_is_exact_to_round_off_up_to_its_bounds():
    """The series and one Newton step, at z and w up to their bounds: within 1e-15 of the 50-digit root."""
    from decimal import Decimal

    from models.flood.sources import _PONDED_W_MAX, _PONDED_Z_MAX, _green_ampt_ponded_m

    rng = np.random.default_rng(5)
    worst = 0.0
    for _ in range(1000):
        f1, suction = float(10 ** rng.uniform(-5, 0.5)), float(rng.uniform(1e-3, 0.5))
        z = min(10 ** rng.uniform(-9, 0) * _PONDED_W_MAX * f1 / suction, _PONDED_Z_MAX * rng.uniform(0.5, 1.0))
        u, exact = _green_ampt_ponded_m(f1, suction, z * f1 * (1 - 1e-12))
        assert exact
        root = _green_ampt_root_50_digits(f1, suction, z * f1 * (1 - 1e-12), u)
        worst = max(worst, float(abs(Decimal(u) - root) / root))
    assert worst < 1e-15


def test_mean_rate_over_a_step_holds_all_the_rain_of_the_rows_it_spans():
    from models.flood.sources import RainSeries

    series = RainSeries(np.array([0.0, 60.0, 120.0, 180.0]), np.array([[36.0], [72.0], [0.0], [0.0]]),
                        ("rain_mm_per_h",)).on_grid((2, 3))
    inside = series.mean_rate_m_per_s(10.0, 50.0)
    assert inside is series.rate_m_per_s(30.0)  # one row holds it: that row's rate, as before
    across = series.mean_rate_m_per_s(30.0, 150.0)  # 30 s of 36 mm/h, 60 s of 72, 30 s of none
    assert across.shape == (2, 3)
    np.testing.assert_allclose(across, (30 * 36.0 + 60 * 72.0) / 120.0 / 3.6e6, rtol=1e-14)
    np.testing.assert_allclose(series.mean_rate_m_per_s(150.0, 400.0), 0.0)
    np.testing.assert_allclose(series.mean_rate_m_per_s(-60.0, 60.0), 36.0 / 2 / 3.6e6, rtol=1e-14)
