"""Offline: the suites' library (operations as data, renaming and signatures for the shrinker,
reproducers, and the exit-code rule of the comparison), on synthetic histories."""

from __future__ import annotations

import subprocess

import yaml

from snapconform.conformance.compare import compare_result, detailed_signature, neutralise
from snapconform.conformance.operations import (
    InstallFile,
    InstallMissingFile,
    Refresh,
    Remove,
    Revert,
    RunApp,
    SetSystem,
    operation_from_json,
)
from snapconform.conformance.reproducer import shell_script, spread_task
from snapconform.conformance.shrink import rename, snap_names
from snapconform.harness.operations import SnapCommandResult
from snapconform.model import snapd as model

SNAP = model.SnapFile(
    "sc-a1", "1.0", epoch_yaml="1*", hooks=(model.HookPlan("post-refresh", "no", "mig"),)
)
OPERATIONS = [
    InstallFile(SNAP),
    InstallFile(SNAP, name="sc-a1_k1"),
    InstallMissingFile("/var/tmp/x.snap"),
    Refresh("sc-a1", "x1"),
    Refresh("sc-a1"),
    Revert("sc-a1_k1", "x2"),
    Remove("sc-a1", "x1", purge=True),
    SetSystem("refresh.retain", "3"),
    RunApp("sc-a1", "m1"),
]


def test_every_operation_round_trips_through_json():
    assert [operation_from_json(op.to_json()) for op in OPERATIONS] == OPERATIONS


def test_rename_keeps_instance_keys_and_touches_nothing_else():
    renamed = rename(OPERATIONS, {"sc-a1": "sc-zz9"})
    assert renamed[0].snap.name == "sc-zz9" and renamed[1].name == "sc-zz9_k1"
    assert renamed[2].path == "/var/tmp/x.snap" and renamed[7].value == "3"
    assert snap_names(renamed) == ["sc-zz9"]


def test_neutralise_takes_names_and_fixture_hashes_out():
    fields = ["sc-a1.sequence", "sc-a1_k1[x2].data", "hooks"]
    assert [neutralise(f, ["sc-a1"]) for f in fields] == [
        "NAME.sequence",
        "NAME_k1[x2].data",
        "hooks",
    ]
    assert neutralise("/s/sc-a1_2.0_0123456789ab.snap", ["sc-a1"]) == "/s/FILE.snap"


def test_detailed_signature_tells_refusals_apart_and_ignores_names_and_file_hashes():
    one = detailed_signature(
        [("error", 'cannot install "/s/sc-a1_1.0_0123456789ab.snap"', "boom sc-a1")], ["sc-a1"]
    )
    same = detailed_signature(
        [("error", 'cannot install "/s/sc-b2_1.0_ba9876543210.snap"', "boom sc-b2")], ["sc-b2"]
    )
    other = detailed_signature([("error", "something else", "boom sc-b2")], ["sc-b2"])
    assert one == same == {'error: cannot install "/s/FILE.snap" / boom NAME'}
    assert other != one
    assert detailed_signature([("sc-a1.sequence", ["x1"], [])], ["sc-a1"]) == {"NAME.sequence"}


def history():
    steps = []
    for index, op in enumerate(OPERATIONS[:2] + OPERATIONS[3:4], start=1):
        steps.append(
            {
                "step": index,
                "operation": op.to_json(),
                "expected": {"ok": index != 3, "error": 'it\'s "refused"', "why": "a rule"},
                "observed": {"exit_code": 0, "error": None},
                "verdict": "divergence" if index == 3 else "pass",
                "mismatches": [
                    {"field": "sc-a1.sequence", "expected": ["x1", "x2"], "observed": ["x2"]},
                    {"field": "sc-a1[x1].data", "expected": ["m1"], "observed": []},
                ]
                if index == 3
                else [],
            }
        )
    return {"host": {"url": "nspawn://bookworm", "snapd": "snapd 2.57"}, "steps": steps}


def test_shell_script_is_valid_bash_and_checks_the_models_expectation(tmp_path):
    script = shell_script(history())
    path = tmp_path / "reproduce.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    assert "check sc-a1.sequence 'x1 x2' \"$(snapd_view sc-a1 revisions)\"" in script
    assert "check 'sc-a1[x1].data' m1 \"$(entries /var/snap/sc-a1/x1)\"" in script
    assert 'snap install --dangerous "$work"/sc-a1_1.0_' in script
    assert script.rstrip().endswith('exit "$status"')


def test_spread_task_is_yaml_with_fixtures_beside_it():
    text, files = spread_task(history(), "minimal divergence")
    task = yaml.safe_load(text)
    assert set(task) == {"summary", "details", "prepare", "execute", "restore"}
    assert "not snap refresh --revision=x1 sc-a1 > err.out 2>&1" in task["execute"]
    assert any(path.endswith("meta/snap.yaml") for path in files)
    assert "snap remove --purge sc-a1" in task["restore"]


def test_a_refusal_that_exits_0_is_compared_by_its_message():
    state = model.new_state()
    outcome = model.remove(state, "sc-none")  # snap prints "not installed" and exits 0
    assert outcome.error is not None and outcome.error.exit_code == 0
    said = SnapCommandResult(("snap",), 0, f"{outcome.error.message}\n", 0.1)
    assert compare_result(outcome, said) == []
    wrong = SnapCommandResult(("snap",), 1, "error: something else", 0.1)
    assert [m.field for m in compare_result(outcome, wrong)] == ["outcome"]


def test_known_divergence_must_explain_every_field_within_its_versions():
    from snapconform.conformance.known import KnownDivergence, explain

    entry = KnownDivergence(
        "demo",
        r"NAME\.sequence",
        "“…” (doc)",
        "snapd keeps one",
        since=(2, 60),
        until=(2, 70),
        shows=r"\('x2',\)",
    )
    seen = ("NAME.sequence", "('x2',)")
    assert explain([seen], (2, 68), [entry]) == (entry,)
    assert explain([seen], (2, 57), [entry]) == ()  # before `since`
    assert explain([seen], (2, 70), [entry]) == ()  # `until` is exclusive
    assert explain([("NAME.sequence", "('x3',)")], (2, 68), [entry]) == ()  # not what it shows
    assert explain([seen, ("hooks", "()")], (2, 68), [entry]) == ()  # hooks unexplained


def test_the_recorded_parallel_instance_divergence_matches_what_snapd_printed():
    from snapconform.conformance.known import KNOWN_DIVERGENCES, explain

    printed = (
        'cannot perform the following tasks: - Run post-refresh hook of "NAME_k1" snap if '
        'present (run hook "post-refresh": cat: can\'t open '
        "'/snap/NAME/x2/snapconform/hooks/post-refresh.stderr': No such file or directory)"
    )
    assert explain([("error", printed)], (2, 57)) == KNOWN_DIVERGENCES[:1]
    assert explain([("error", printed)], (2, 77)) == ()  # 2.77 behaves as documented
    assert explain([("error", "some other refusal")], (2, 57)) == ()


def test_a_divergence_found_by_a_fault_explains_only_runs_with_a_fault():
    """The fault entries' aftermath (no hooks ran, a change ended Error) looks like unrelated
    mismatches of plain runs: they explain a step only in the scope the fault left them."""
    from snapconform.conformance.known import KNOWN_DIVERGENCES, explain

    by_key = {entry.key: entry for entry in KNOWN_DIVERGENCES}
    power_cut = by_key["power-cut-remove-ends-error"]
    ended = ("change.status", "Error")
    assert explain([ended], (2, 77), [power_cut]) == ()  # a plain run's failed change
    assert explain([ended], (2, 77), [power_cut], faults=frozenset({"run"})) == ()  # a later step
    step = frozenset({"step", "run"})
    assert explain([ended], (2, 77), [power_cut], faults=step) == (power_cut,)
    no_hooks = ("hooks", "()")
    compile_entry = by_key["killed-profile-compile-undoes-install"]
    assert explain([no_hooks], (2, 57), [compile_entry]) == ()
    assert explain([no_hooks], (2, 57), [compile_entry], faults=frozenset({"run"})) == (
        compile_entry,
    )
    # every entry a fault found says so
    found = [
        e.key for e in KNOWN_DIVERGENCES if "fault soak" in e.observed or "SIGKILL" in e.observed
    ]
    assert found and all(by_key[key].found_by_fault for key in found)
