"""Offline: generated store histories (the store machine run against the model alone), their
shrinking (names renamed inside publisher steps, a revision's releases simplified together) and
their reproducers (the script and spread task start the shipped store and swap its catalogs;
store/ holds the program, the model and signed catalogs, never a key; the minimal test uses the
store tier's fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from snapconform.conformance.machine import FailureRecorder, moved_epoch
from snapconform.conformance.operations import Operation, Revert, operation_from_json
from snapconform.conformance.reproducer import (
    ReproducerError,
    expected_exit_zero,
    shell_script,
    spread_task,
    write_reproducers,
)
from snapconform.conformance.session import StepRecord
from snapconform.conformance.shrink import _with_file, python_program, rename, snap_names
from snapconform.conformance.store_machine import StoreMachine, hop_path, is_bridge
from snapconform.conformance.store_steps import (
    CloseChannel,
    Misbehave,
    Misbehaviour,
    RefreshAll,
    Release,
    StoreInstall,
    StoreOperation,
    StoreRefresh,
    StoreWorld,
    Unrelease,
)
from snapconform.model import snapd as model
from snapconform.model.epoch import Epoch
from snapconform.served_store.assertions import Signer, TestKeys

NAME = "sc-st1"
HOOKS = (model.HookPlan("post-refresh", marker="migrated"),)
HISTORY_OPERATIONS: list[Operation] = [
    Release(model.SnapFile(NAME, "1.0"), "stable", 1),
    StoreInstall(NAME),
    Release(model.SnapFile(NAME, "2.0", epoch_yaml="1*", hooks=HOOKS), "stable", 2),
    Release(model.SnapFile(NAME, "3.0", epoch_yaml="1"), "stable", 3),
    RefreshAll(watch=(NAME,)),
    Release(model.SnapFile(NAME, "3.0", epoch_yaml="1"), "candidate", 3),
    CloseChannel(NAME, "candidate"),
    StoreRefresh(NAME, channel="candidate"),
    Misbehave(Misbehaviour(offer_unreadable=((NAME, 1),))),
    StoreRefresh(NAME),
    Misbehave(Misbehaviour()),
    Unrelease(NAME, "stable"),
]


class ModelOnlyRun:
    """The steps of a run predicted by the model alone (no host): what generation needs."""

    def __init__(self) -> None:
        self.state = model.new_state((2, 57))
        self.world = StoreWorld()
        self.history: list[StepRecord] = []
        self.outcomes: list[model.Outcome] = []
        self.last_observation = None

    def step(self, operation: Operation) -> StepRecord:
        if isinstance(operation, StoreOperation):
            outcome, world = operation.predict_store(self.state, self.world)
        else:
            outcome, world = operation.predict(self.state, lambda snap: "/f.snap"), self.world
        assert operation_from_json(json.loads(json.dumps(operation.to_json()))) == operation
        record = StepRecord(
            index=len(self.history) + 1,
            operation=operation.to_json(),
            command=operation.shell(lambda snap: "/f.snap"),
            expected_ok=outcome.error is None,
            expected_kind=None if outcome.error is None else outcome.error.kind,
            expected_error=None if outcome.error is None else outcome.error.message,
            expected_why=outcome.why,
            expected_hooks=[[run.instance, run.hook, run.revision] for run in outcome.hooks_run],
        )
        self.history.append(record)
        self.outcomes.append(outcome)
        self.state, self.world = outcome.state, world
        return record


def model_history(operations: list[Operation]) -> dict[str, Any]:
    """A history as a run saves it, with each step's outcome from the model (observed: the
    same, except a last-step divergence in the store requests)."""
    run = ModelOnlyRun()
    for operation in operations:
        run.step(operation)
    steps = []
    for record, outcome in zip(run.history, run.outcomes, strict=True):
        data = record.to_json()
        exit_code = 0 if outcome.error is None else outcome.error.exit_code
        data["observed"]["exit_code"] = exit_code
        data["verdict"] = "pass"
        steps.append(data)
    steps[4]["verdict"] = "divergence"
    steps[4]["mismatches"] = [
        {"field": "store_requests", "expected": ["assertions", "refresh: x"], "observed": []},
        {"field": f"{NAME}.channel", "expected": "latest/stable", "observed": "latest/beta"},
    ]
    host = {"url": "nspawn://bookworm?snapd=testkeys", "snapd": "snapd 2.57.6"}
    return {"host": host, "snapd_version": [2, 57], "steps": steps}


@pytest.fixture(scope="module")
def keys() -> TestKeys:
    # Throwaway keys: the catalogs only need to be signed (snapd's test keys stay in the cache).
    return TestKeys(store=Signer.generate(1024), root=Signer.generate(1024))


# -- generation -----------------------------------------------------------------------------------


class ModelOnlyStoreMachine(StoreMachine):
    runs: ClassVar[list[ModelOnlyRun]] = []

    def new_run(self) -> Any:
        run = ModelOnlyRun()
        self.runs.append(run)
        return run

    def teardown(self) -> None:
        pass


def test_generated_store_histories_are_ones_the_model_predicts(tmp_path):
    """Every generated step is predicted without a model gap and round-trips through JSON;
    every kind of store step is generated."""
    recorder = FailureRecorder(tmp_path)
    ModelOnlyStoreMachine.configure(None, recorder)  # type: ignore[arg-type]
    ModelOnlyStoreMachine.runs = []
    run_state_machine_as_test(
        ModelOnlyStoreMachine,
        settings=settings(
            max_examples=120,
            stateful_step_count=30,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert recorder.steps > 1000
    kinds = {type(op).__name__ for run in ModelOnlyStoreMachine.runs for op in _ops(run)}
    assert {"Release", "CloseChannel", "Unrelease", "Misbehave", "StoreInstall"} <= kinds
    assert {"StoreRefresh", "RefreshAll", "Switch", "Revert", "Remove", "SetSystem"} <= kinds


def labels_of(steps: Callable[[ModelOnlyStoreMachine], None]) -> dict[str, int]:
    """The labels one example of rule calls earns (run inside Hypothesis: labels are events)."""
    recorder = FailureRecorder(Path("unused"))
    ModelOnlyStoreMachine.configure(None, recorder)  # type: ignore[arg-type]

    @given(st.just(None))
    @settings(max_examples=1, database=None, phases=[Phase.generate])
    def example(_: None) -> None:
        steps(ModelOnlyStoreMachine())

    example()
    return recorder.labels


def test_one_refresh_through_a_bridge_and_its_epoch_is_epoch_stepping():
    def steps(machine: ModelOnlyStoreMachine) -> None:
        machine.start("stable", None, ())
        machine.release_epoch_step("tracked", ())
        machine.refresh_all()

    labels = labels_of(steps)
    assert labels["epoch stepping"] == labels["bridge used"] == 1
    assert labels["epoch-crossing refresh"] == 1


def test_refresh_all_not_taking_back_a_reverted_from_revision_is_a_blocked_retry():
    def steps(machine: ModelOnlyStoreMachine) -> None:
        machine.start("stable", None, ())
        machine.release("tracked", "same", None, ())
        machine.refresh_all()
        machine.revert(0, None)
        machine.refresh_all()
        machine.refresh(0, None)  # `snap refresh NAME` takes it back

    assert labels_of(steps)["blocked retry"] == 1


def test_a_store_offering_an_unreadable_revision_is_refused():
    def steps(machine: ModelOnlyStoreMachine) -> None:
        machine.start("stable", None, ())
        machine.release("tracked", "next", None, ())  # R2, epoch 1: epoch-0 users cannot
        machine.misbehave("offer_unreadable", 0, "0")
        machine.refresh(0, None)
        machine.refresh_all()
        machine.behave()

    labels = labels_of(steps)
    assert labels["misbehaving store refused"] == 2 and labels["refused refresh"] == 1


def test_a_closed_channel_forwarding_notice_and_a_retried_failed_revision():
    failing = (model.HookPlan("post-refresh", fails_with="planned failure"),)

    def steps(machine: ModelOnlyStoreMachine) -> None:
        machine.start("stable", None, ())
        machine.release("candidate", "same", None, ())
        machine.refresh(0, "candidate")
        machine.close_channel(1)  # candidate (stable and candidate are open)
        machine.release("stable", "same", None, ())
        machine.refresh(0, None)  # forwarded to stable's R3
        machine.release("stable", "same", None, failing)
        machine.refresh_all()  # R4's post-refresh fails: rolled back
        machine.refresh_all()  # tried again (2.57 remembers nothing)

    labels = labels_of(steps)
    assert labels["closed-channel forwarding"] == 1
    assert labels["rollback by failing hook"] == 2 and labels["failed revision retried"] == 1


def _ops(run: ModelOnlyRun) -> list[Operation]:
    return [operation_from_json(record.operation) for record in run.history]


def test_epochs_move_relative_to_the_last_one():
    one_star = Epoch.parse_yaml("1*")
    assert moved_epoch(one_star, "same", None) == "1*"
    assert moved_epoch(one_star, "settle", None) == "1"
    assert moved_epoch(Epoch(), "settle", None) == "0"
    assert moved_epoch(one_star, "bridge", None) == "2*"
    assert moved_epoch(one_star, "next", None) == "2"
    assert moved_epoch(one_star, "fixed", "{read: [1, 2]}") == "{read: [1, 2]}"
    assert is_bridge(one_star) and not is_bridge(Epoch.parse_yaml("1"))


def test_the_hops_of_a_refresh_are_read_from_its_re_refresh_requests():
    run = ModelOnlyRun()
    for operation in HISTORY_OPERATIONS[:4]:
        run.step(operation)
    before = run.state
    run.step(HISTORY_OPERATIONS[4])
    assert hop_path(NAME, before, run.outcomes[-1]) == ["1", "2", "3"]  # 0 -> 1* -> 1


# -- shrinking ------------------------------------------------------------------------------------


def test_store_steps_are_renamed_inside_publisher_steps():
    misbehave = Misbehave(
        Misbehaviour(
            offer_unreadable=((NAME, 2),),
            report_epoch=((NAME, 1, "1"),),
            wrong_sha3=(NAME,),
            tampered=((NAME, "snap-revision", 1),),
        )
    )
    operations = [*HISTORY_OPERATIONS, misbehave, RefreshAll(watch=(NAME, f"{NAME}_k1"))]
    assert snap_names([HISTORY_OPERATIONS[0], CloseChannel("sc-other", "edge")]) == [
        NAME,
        "sc-other",
    ]
    renamed = rename(operations, {NAME: "sc-zz9"})
    assert snap_names(renamed) == ["sc-zz9"]
    assert renamed[0].snap.name == "sc-zz9"  # type: ignore[attr-defined]
    assert renamed[6] == CloseChannel("sc-zz9", "candidate")
    assert renamed[11] == Unrelease("sc-zz9", "stable")
    assert renamed[-2] == Misbehave(
        Misbehaviour(
            offer_unreadable=(("sc-zz9", 2),),
            report_epoch=(("sc-zz9", 1, "1"),),
            wrong_sha3=("sc-zz9",),
            tampered=(("sc-zz9", "snap-revision", 1),),
        )
    )
    assert renamed[-1] == RefreshAll(watch=("sc-zz9", "sc-zz9_k1"))


def test_simplifying_a_release_changes_every_release_of_that_revision():
    simpler = model.SnapFile(NAME, "3.0")
    changed = _with_file(list(HISTORY_OPERATIONS), 3, simpler)
    assert changed[3].snap == simpler and changed[5].snap == simpler  # type: ignore[attr-defined]
    assert changed[2] == HISTORY_OPERATIONS[2]
    run = ModelOnlyRun()  # the simplified history still predicts: one file per revision
    for operation in changed:
        run.step(operation)


def test_the_minimal_program_of_a_store_history_uses_the_store_tier():
    text = python_program(HISTORY_OPERATIONS)
    assert "def test_minimal_divergence(store_run):" in text
    ran: list[list[Operation]] = []
    namespace: dict[str, Any] = {}
    exec(compile(text, "test_minimal.py", "exec"), namespace)  # our own output
    namespace["test_minimal_divergence"](
        type("Run", (), {"run": lambda self, ops: ran.append(ops)})()
    )
    assert ran == [HISTORY_OPERATIONS]
    assert "(conformance):" in python_program([Revert(NAME)])


# -- reproducers ----------------------------------------------------------------------------------


def test_the_script_starts_the_store_and_swaps_catalogs_at_publisher_steps(tmp_path):
    script = shell_script(model_history(HISTORY_OPERATIONS))
    path = tmp_path / "reproduce.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    lines = script.splitlines()
    assert lines.index("store_check") < lines.index("publish step-000") < lines.index("store_start")
    for position, operation in enumerate(HISTORY_OPERATIONS, start=1):
        if isinstance(operation, StoreOperation) and operation.publishes:
            assert f"publish step-{position:03d}" in lines
    assert lines.count("store_requests") == 4  # after each user step
    assert "check store_requests 'assertions | refresh: x'" in script
    assert f'check {NAME}.channel latest/stable "$(snapd_view {NAME} channel)"' in script
    assert "SNAPPY_FORCE_API_URL=http://127.0.0.1:$store_port" in script


def test_the_spread_task_points_snapd_at_the_store_and_puts_it_back():
    history = model_history(HISTORY_OPERATIONS)
    task = yaml.safe_load(spread_task(history, "store history")[0])
    assert "SNAPPY_FORCE_API_URL=http://127.0.0.1:8190" in task["prepare"]
    assert task["prepare"].rstrip().endswith("store_start")
    assert "publish step-006" in task["execute"]
    assert "snapconform-reproducer-store.conf" in task["restore"]
    # The refresh offered an unreadable revision is refused (exit 1), refresh-all is not.
    refused = history["steps"][9]
    assert refused["expected"]["kind"] == "epoch-refused" and not expected_exit_zero(refused)
    assert f"not snap refresh {NAME} > err.out 2>&1" in task["execute"]
    assert "\nsnap refresh\nstore_requests\n" in task["execute"]


def test_a_refusal_that_exits_0_runs_without_not():
    record = {"expected": {"ok": False, "kind": "no-update"}, "observed": {"exit_code": 0}}
    assert expected_exit_zero(record)
    record["mismatches"] = [{"field": "outcome", "expected": "exit 1: no", "observed": "exit 0"}]
    assert not expected_exit_zero(record)
    assert not expected_exit_zero({"expected": {"ok": False}, "observed": {"exit_code": 0}})


def test_store_beside_the_reproducers_holds_program_model_and_signed_catalogs(tmp_path, keys):
    history = model_history(HISTORY_OPERATIONS)
    with pytest.raises(ReproducerError):
        write_reproducers(history, tmp_path / "none", "x")
    written = write_reproducers(history, tmp_path, "x", keys=keys)
    store = tmp_path / "store"
    assert store in written
    assert (store / "program" / "server_program.py").is_file()
    assert (store / "program" / "snapconform" / "model" / "store.py").is_file()
    assert (store / "requests.py").is_file()
    catalogs = sorted(path.name for path in (store / "catalogs").iterdir())
    publishers = [
        f"step-{i:03d}"
        for i, op in enumerate(HISTORY_OPERATIONS, start=1)
        if isinstance(op, StoreOperation) and op.publishes
    ]
    assert catalogs == ["step-000", *publishers]
    after_three = json.loads((store / "catalogs" / "step-004" / "catalog.json").read_text())
    assert sorted(after_three["snaps"][NAME]["revisions"]) == ["1", "2", "3"]
    assert (store / "catalogs" / "step-004" / "files" / f"{NAME}_2.snap").is_file()
    assert any((store / "catalogs" / "step-004" / "assertions" / "snap-revision").iterdir())
    lying = json.loads((store / "catalogs" / "step-009" / "catalog.json").read_text())
    assert lying["misbehave"] == {"offer-unreadable": {NAME: 1}}
    task_store = tmp_path / "spread" / "snapconform-reproducer" / "store"
    assert (task_store / "catalogs" / "step-012" / "catalog.json").is_file()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path


def test_the_shipped_store_serves_the_catalog_of_its_step(tmp_path, keys):
    """The shipped program and model, run as the script runs them (bound to 127.0.0.1 on a
    free port here), answer an install from the catalog of step 4 with revision 1; the shipped
    requests.py then describes that request as the model describes its predictions."""
    write_reproducers(model_history(HISTORY_OPERATIONS), tmp_path, "x", keys=keys)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "catalog").symlink_to(tmp_path / "store" / "catalogs" / "step-004")
    port_file = run_dir / "port"
    server = subprocess.Popen(
        [
            sys.executable,
            str(tmp_path / "store" / "program" / "server_program.py"),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--catalog",
            str(run_dir / "catalog"),
            "--log",
            str(run_dir / "requests.log"),
        ],
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.05)
        body = {
            "context": [],
            "actions": [
                {"action": "install", "name": NAME, "channel": "stable", "instance-key": "i-1"}
            ],
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port_file.read_text().strip()}/v2/snaps/refresh",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            (result,) = json.loads(reply.read())["results"]
        assert result["snap"]["revision"] == 3  # new users get the latest epoch: R3 (1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    shown = subprocess.run(
        [sys.executable, str(tmp_path / "store" / "requests.py"), str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"install: context [] actions [install {NAME} channel=stable]" in shown.stdout
    described = (run_dir / "step-requests").read_text()
    assert described == f"install: context [] actions [install {NAME} channel=stable]"
    again = subprocess.run(
        [sys.executable, str(tmp_path / "store" / "requests.py"), str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout == "" and (run_dir / "step-requests").read_text() == ""


def test_a_store_offering_any_revision_still_answers_a_revision_asked_for():
    """Found by the soak run: the served store answers `snap refresh --revision=N` with N while
    it offers R4 to every other refresh (snapd refreshed to 6, then the re-refresh was offered
    R4 and refused); the model's misbehaving store must do the same."""
    run = ModelOnlyRun()
    for operation in (
        Release(model.SnapFile(NAME, "4.0", epoch_yaml="2"), "beta", 4),
        Release(model.SnapFile(NAME, "6.0", epoch_yaml="4*"), "stable", 6),
        Release(model.SnapFile(NAME, "7.0", epoch_yaml="4"), "edge", 7),
        StoreInstall(NAME, "edge"),
        Misbehave(Misbehaviour(offer_unreadable=((NAME, 4),))),
        StoreRefresh(NAME, revision=6),
    ):
        run.step(operation)
    outcome = run.outcomes[-1]
    found = run.state.instance(NAME)
    assert found is not None and found.revisions == ("7", "6") and found.current == "6"
    assert outcome.error is not None and outcome.error.message.startswith(
        "cannot perform the following tasks:\n"
        f'- Handling re-refresh of "{NAME}" as needed (cannot refresh "{NAME}" to new revision 4'
    )


def test_hooks_are_compared_per_instance_not_across_concurrent_lanes():
    """Found by the store machine's ci run: `snap refresh` of NAME and NAME_k1 ran NAME_k1's
    pre-refresh first; snapd runs the two lanes of the change concurrently."""
    from snapconform.conformance.compare import compare_hooks
    from snapconform.harness.observe import HookLogLine, Observation

    runs = [("a", "pre-refresh", "1"), ("a", "post-refresh", "2")]
    runs += [("a_k1", "pre-refresh", "1"), ("a_k1", "post-refresh", "2")]
    outcome = model.Outcome(
        model.new_state(), None, tuple(model.HookRun(*run) for run in runs), "two lanes"
    )

    def seen(order: list[int]) -> Observation:
        lines = tuple(HookLogLine(*runs[i], snap_data="", version="") for i in order)
        return Observation(instances={}, hooks=lines, changes=(), last_change=0)

    assert compare_hooks(outcome, seen([2, 0, 1, 3])) == []
    assert [m.field for m in compare_hooks(outcome, seen([1, 0, 2, 3]))] == ["hooks"]
    assert [m.field for m in compare_hooks(outcome, seen([0, 1, 2]))] == ["hooks"]
