"""A failing hook's error keeps only the tail of its output, as snapd's bounded buffer does:
osutil/exec.go RunAndWait collects stdout and stderr in strutil.NewLimitedBuffer(100, 10*1024);
strutil.TruncateOutput keeps the last 10 KiB, cut after the 100th newline from the end; then
osutil.OutputErr trims it and frames a multi-line one in `-----` lines (2.57.6, 2.68.3, 2.77)."""

from __future__ import annotations

from snapconform.model import snapd as model
from snapconform.model.snapd_text import (
    HOOK_OUTPUT_MAX_BYTES,
    HOOK_OUTPUT_MAX_LINES,
    hook_error,
    hook_output_tail,
)


def numbered(count: int) -> str:
    return "".join(f"line {n}\n" for n in range(1, count + 1))


def test_the_buffer_is_100_lines_and_10_kib():
    assert (HOOK_OUTPUT_MAX_LINES, HOOK_OUTPUT_MAX_BYTES) == (100, 10240)


def test_short_output_is_kept_whole():
    assert hook_output_tail("planned failure") == "planned failure"
    assert hook_output_tail(numbered(99)) == numbered(99)


def test_a_trailing_newline_counts_so_100_lines_keep_99():
    # TruncateOutput stops at the 100th newline counted from the end, and the last line's own
    # newline is the first of them.
    assert hook_output_tail(numbered(100)) == numbered(100).split("\n", 1)[1]
    kept = hook_output_tail(numbered(150))
    assert kept.splitlines()[0] == "line 52" and kept.splitlines()[-1] == "line 150"
    assert len(kept.splitlines()) == 99


def test_without_a_trailing_newline_100_lines_are_kept():
    text = numbered(150).rstrip("\n")
    assert hook_output_tail(text).splitlines()[0] == "line 51"


def test_one_long_line_keeps_its_last_10_kib():
    text = "".join(chr(ord("a") + n % 26) for n in range(12000))
    assert hook_output_tail(text) == text[-10240:]


def test_the_error_frames_the_kept_tail():
    error = hook_error("post-refresh", numbered(150))
    assert error.startswith('run hook "post-refresh": \n-----\nline 52\n')
    assert error.endswith("line 150\n-----")


def test_a_failed_post_refresh_reports_only_the_tail():
    name = "sc-tail"
    state = model.install(model.new_state(), model.SnapFile(name, "1.0"), file_path="/a.snap").state
    failing = model.SnapFile(name, "2.0", hooks=(model.HookPlan("post-refresh", numbered(150)),))
    outcome = model.install(state, failing, file_path="/b.snap")
    assert outcome.error is not None
    assert "line 51\n" not in outcome.error.message
    assert "\n-----\nline 52\n" in outcome.error.message
    assert outcome.state.instance(name).revisions == ("x1",)
