"""A failing hook with long output: snapd's error keeps only the tail (100 lines, 10 KiB), and
the model predicts exactly which tail (model/snapd_text.py hook_output_tail)."""

from __future__ import annotations

import pytest

from snapconform.conformance.operations import InstallFile
from snapconform.model.snapd import HookPlan, SnapFile

pytestmark = pytest.mark.conformance


def numbered(count: int) -> str:
    return "".join(f"line {n} of the hook's output\n" for n in range(1, count + 1))


@pytest.mark.parametrize(
    "output",
    [numbered(150), "x" * 6000 + "y" * 6000, numbered(40)],
    ids=["150-lines", "12-KiB-one-line", "40-lines-whole"],
)
def test_a_failing_hooks_error_keeps_the_tail_of_its_output(conformance, names, output):
    name = names.fresh()
    conformance.run(
        [
            InstallFile(SnapFile(name, "1.0")),
            InstallFile(SnapFile(name, "2.0", hooks=(HookPlan("post-refresh", output),))),
        ]
    )
    error = conformance.history[-1].observed_error or ""
    if output.count("\n") > 100:
        assert "line 50 of" not in error and "line 150 of" in error
    elif len(output) > 10240:
        assert "x" * 4240 + "y" * 6000 in error and "x" * 4241 not in error
