"""A long run's progress on the terminal: at most one line per interval, and only while the
step count moves (test_pytest_wiring.py shows the lines reach the terminal)."""

from __future__ import annotations

from snapconform.reports.progress import ProgressLines, ProgressTicker, Sample, describe


def test_a_line_per_interval_while_steps_move():
    lines = ProgressLines(interval=30)
    seen = []
    for second in range(0, 301, 2):  # ten minutes... of five, sampled every 2 s: 1 step/s
        line = lines.line(Sample(steps=second, labels={"refused refresh": second // 10}), second)
        if line:
            seen.append((second, line))
    assert [second for second, _ in seen] == list(range(32, 301, 30))
    assert seen[0][1] == (
        "snapconform progress: 32 steps in 0.5 min (64.0 steps/min); labels: refused refresh 3"
    )


def test_no_line_when_nothing_moves_or_nothing_runs():
    lines = ProgressLines(interval=30)
    assert lines.line(None, 0) is None
    assert lines.line(Sample(0, {}), 100) is None
    assert lines.line(Sample(5, {}), 200) is None  # the start: the first line is due at 230
    assert lines.line(Sample(5, {}), 400) is None  # a stalled counter prints nothing
    assert lines.line(Sample(6, {}), 401) is not None


def test_a_new_counter_starts_over():
    lines = ProgressLines(interval=30)
    lines.line(Sample(50, {}), 0)
    assert lines.line(Sample(80, {}), 40) is not None
    assert lines.line(Sample(3, {}), 41) is None  # the next state-machine test
    assert lines.line(Sample(9, {}), 60) is None  # not 30 s into it yet
    assert "10 steps in 0.5 min" in (lines.line(Sample(10, {}), 71) or "")


def test_describe_without_labels():
    assert describe(Sample(0, {}), 0) == (
        "snapconform progress: 0 steps in 0.0 min (0.0 steps/min); labels: none yet"
    )


def test_the_ticker_thread_writes_through_its_writer():
    clock = iter(range(0, 10_000, 20))
    steps = iter(range(1, 1000))
    written: list[str] = []
    ticker = ProgressTicker(
        written.append,
        sample=lambda: Sample(next(steps), {"x-number reuse": 1}),
        interval=30,
        clock=lambda: float(next(clock)),
    )
    for _ in range(5):
        ticker.tick()
    assert len(written) == 2 and all("x-number reuse 1" in line for line in written)
