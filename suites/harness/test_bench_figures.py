"""Offline: the bench's figures from synthetic timings (phases of a refresh from snapd's
change times; the store/local ratio paired per round; checked_over_raw; the phases of one and
several hosts at once, the speedup and what limits it)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from snapconform.commands.bench import (
    checked_over_raw,
    cpu_busy,
    phase_figures,
    phases_of,
    print_report,
    speedup_figures,
    store_ratios,
)


def test_phases_split_a_refresh_at_its_change():
    change = {"spawn": 100.05, "tasks_ready": 100.65, "ready": 101.05}
    split = phases_of(change, started=100.0, duration=1.12)
    assert split == pytest.approx(
        {"before_change": 0.05, "tasks": 0.6, "rerefresh_wait": 0.4, "after_change": 0.07}
    )
    assert phases_of({"spawn": 1.0, "ready": None, "tasks_ready": 1.0}, 0.0, 1.0) is None


def _bench(local: list[float], store: list[float], waits: list[float | None]) -> SimpleNamespace:
    times = {path: {"refresh": local, "store-refresh": store} for path in ("harness", "raw")}
    return SimpleNamespace(times=times, waits={"harness": waits, "raw": waits})


def test_the_ratio_is_paired_per_round_so_a_slow_round_moves_both():
    # round 2 ran under load: both commands slow; the ratio of medians would mix rounds
    bench = _bench([0.5, 2.0, 0.6], [1.0, 2.5, 1.1], [0.45, 0.1, None])
    per_op = {
        "refresh": {"raw_s": 0.6, "harness_s": 0.6},
        "store-refresh": {"raw_s": 1.1, "harness_s": 1.1},
    }
    ratios = store_ratios(bench, per_op)  # type: ignore[arg-type]
    assert ratios["store_refresh_over_local_refresh"] == 1.83  # median of 2.0, 1.25, 1.83
    assert ratios["store_refresh_over_local_refresh_raw_medians"] == 1.83
    # (1.0 - 0.45) / 0.5 and (2.5 - 0.1) / 2.0 on each path; round 3's wait was not read
    assert ratios["store_refresh_over_local_refresh_without_tick"] == 1.15


def test_the_report_says_whether_the_store_target_is_met(capsys):
    print_report({"host": "h", "store_tier": True, "store_refresh_over_local_refresh": 1.62})
    line = next(x for x in capsys.readouterr().out.splitlines() if "store_refresh" in x)
    assert "target <= 1.5" in line and line.endswith("MISSED")
    print_report({"host": "h", "store_rows_missing": "no store tier here: why"})
    assert "store-install, store-refresh: not measured (no store tier here: why)" in (
        capsys.readouterr().out
    )


def test_checked_over_raw_is_paired_per_round_and_the_raw_rate_comes_from_the_rows():
    raw = {
        "install": [0.5, 0.5],
        "refresh": [0.6],
        "revert": [0.2],
        "remove": [0.2],
        "store-install": [9.0],
    }  # store rows are not the checked cycle's
    # round 2 ran under load: both its checked and its raw cycle were slow
    figures = checked_over_raw(raw, checked_rounds=[6.0, 12.0, 5.5], raw_rounds=[4.0, 10.0, 5.0])
    assert figures["raw_cycle_operations_per_minute"] == 150.0  # 5 operations in 2.0 s
    assert figures["checked_over_raw_rounds"] == [1.5, 1.2, 1.1]
    assert figures["checked_over_raw"] == 1.2  # the median
    assert checked_over_raw({}, [], []) == {}


def test_cpu_busy_per_cpu_between_two_readings():
    before = {"cpu0": (100, 1000), "cpu1": (500, 1000)}
    after = {"cpu0": (190, 1100), "cpu1": (510, 1100)}
    assert cpu_busy(before, after) == {"cpu0": 0.9, "cpu1": 0.1}


def _result(steps, seconds, snapd, shell, harness):
    return {
        "steps": steps,
        "seconds": seconds,
        "cpu_seconds": {"snapd": snapd, "shell": shell, "harness": harness},
    }


def test_a_phase_sums_its_hosts_and_splits_the_cpu_per_step():
    results = [_result(32, 60.0, 8.0, 4.0, 12.0), _result(32, 64.0, 8.0, 4.0, None)]
    phase = phase_figures(results, 64.0, {"cpu0": 0.5, "cpu1": 0.4}, "1.0 2.0 3.0")
    assert phase["steps"] == 64 and phase["checked_steps_per_minute"] == 60.0
    assert phase["per_host_steps_per_minute"] == [32.0, 30.0]
    # one host could not tell the harness's CPU: that side is unknown, not half counted
    assert phase["step_cpu_seconds"] == {"snapd": 0.25, "shell": 0.125, "harness": None}


def test_speedup_pairs_each_many_host_phase_with_the_one_host_phases_around_it():
    def one(seconds):
        return phase_figures([_result(32, seconds, 4.0, 2.0, 6.0)], seconds, {"cpu0": 0.6}, "3")

    busy = {"cpu0": 0.97, "cpu1": 0.95}
    many = phase_figures([_result(32, 60.0, 4.0, 2.0, 6.0)] * 2, 60.0, busy, "9.5 8 7")
    # the load grew during the run: one host went 40, 30, 20 steps/min
    figures = speedup_figures([one(48.0), many, one(64.0), many, one(96.0)])
    assert figures["one_host_checked_steps_per_minute"] == 30.0
    assert figures["hosts_checked_steps_per_minute"] == 64.0
    assert figures["speedup_per_phase"] == [1.83, 2.56]  # 64 over 35, then over 25
    assert figures["speedup"] == 2.19  # the median
    note = figures["speedup_note"]
    assert note.startswith("CPU-bound: in the 2-host phases the CPUs were cpu0 97%, cpu1 95%")
    assert "load average 9.5 8 7 / 9.5 8 7" in note and "our steps 20% of them" in note
    assert "0.38 CPU-s (snapd 0.12, shell 0.06, harness 0.19)" in note
    idle = dict(many, cpu_busy={"cpu0": 0.5, "cpu1": 0.4})
    assert speedup_figures([one(48.0), idle, one(48.0)])["speedup_note"].startswith(
        "not CPU-bound: in the 2-host phases the CPUs were 45% busy on average"
    )


def test_the_report_prints_the_worker_phases_and_the_speedup_target(capsys):
    one = phase_figures([_result(4, 6.0, 1.0, 1.0, 1.0)], 6.0, {"cpu0": 0.5}, "1 1 1")
    many = phase_figures([_result(4, 6.0, 1.0, 1.0, 1.0)] * 2, 6.0, {"cpu0": 0.5}, "1 1 1")
    figures = {"host": "h", **speedup_figures([one, many, one]), "checked_over_raw": 1.1}
    figures["workers"] = {"count": 2, "cpus": [0, 1], "phases": [one, many, one]}
    print_report(figures)
    out = capsys.readouterr().out
    assert any(
        line.startswith("speedup") and line.endswith("target >= 1.8  met")
        for line in out.splitlines()
    ), out
    assert any(
        line.startswith("checked_over_raw") and "target <= 1.2  met" in line
        for line in out.splitlines()
    ), out
    assert "2 host(s) on cpu ?: 80.0 checked steps/min (8 in 6.0 s; busy cpu0 50%; load 1 1 1)" in (
        out
    )
