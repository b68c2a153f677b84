"""Offline: the bench's store figures from synthetic timings (phases of a refresh from snapd's
change times; the store/local ratio paired per round)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from snapconform.commands.bench import phases_of, print_report, store_ratios


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
