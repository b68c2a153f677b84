"""Seed 004's transition table replayed on real snapd: the three users are three parallel
instances of one snap on one snapd (NAME_user1 tracking stable from step 1, NAME_user2
candidate from step 1, NAME_user3 candidate from step 3). The plan file drives it: each step's
release goes to the served store, users due to install do (`snap install NAME_userN
--channel=C`), then `snap refresh` runs as an auto-refresh would. Every step is model-checked,
and every cell of the corrected table (the model's evaluation of the plan, one machine per user)
is compared with the revision and epoch snapd holds for that user's instance."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapconform.conformance.compare import observed_epoch
from snapconform.conformance.operations import Operation, SetSystem
from snapconform.conformance.store_steps import RefreshAll, Release, StoreInstall
from snapconform.model.plan import Cell, ReplayStep, Table, evaluate, parse_plan, replay_steps
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance

PLAN = Path(__file__).resolve().parents[1] / "plans" / "epochs-004.yaml"


def step_operations(step: ReplayStep, name: str, watch: tuple[str, ...]) -> list[Operation]:
    """One plan step on one snapd: the store events, the installs due, then one `snap refresh`
    for every user already installed (they share the machine, so one refresh serves all)."""
    operations: list[Operation] = []
    for event in step.store_events:
        if event.kind != "release":
            raise AssertionError(f"004 has only releases; step {step.number} has {event.kind}")
        assert event.revision is not None and event.epoch is not None
        snap = SnapFile(name, f"{event.revision}.0", epoch_yaml=str(event.epoch))
        operations.append(Release(snap, event.channel, event.revision))
    kinds = {operation.kind for operation in step.operations}
    if not kinds <= {"install", "refresh"}:
        raise AssertionError(f"004 has only installs and refreshes, not {sorted(kinds)}")
    for operation in step.operations:
        if operation.kind == "install":
            operations.append(StoreInstall(f"{name}_{operation.user}", channel=operation.channel))
    if "refresh" in kinds:
        operations.append(RefreshAll(watch=watch))
    return operations


def cell_of(cell: Cell | None) -> tuple[str, str] | None:
    return None if cell is None else (str(cell.revision), str(cell.epoch))


def test_004_table_replayed_on_three_parallel_instances(store_run, names):
    plan = parse_plan(PLAN.read_text(encoding="utf-8"), str(PLAN))
    table: Table = evaluate(plan)
    name = names.fresh()
    users = [user.name for user in plan.users]
    watch = tuple(f"{name}_{user}" for user in users)
    store_run.step(SetSystem("experimental.parallel-instances", "true"))

    expected_rows: list[dict[str, tuple[str, str] | None]] = []
    observed_rows: list[dict[str, tuple[str, str] | None]] = []
    for row, step in zip(table.rows, replay_steps(table), strict=True):
        store_run.run(step_operations(step, name, watch))
        # The step's last observation covers every instance the run knows.
        observation = store_run.last_observation
        observed: dict[str, tuple[str, str] | None] = {}
        for user, instance in zip(users, watch, strict=True):
            seen = observation.instances.get(instance)
            if seen is None or not seen.installed:
                observed[user] = None
                continue
            current = seen.revision(seen.current or "")
            assert current is not None
            observed[user] = (current.revision, observed_epoch(current.epoch_yaml))
        expected_rows.append({user: cell_of(row.cells[user]) for user in users})
        observed_rows.append(observed)
    # Every cell of the documents' (corrected) table, as snapd holds it.
    assert observed_rows == expected_rows
    # The headline cells: (!) at step 3 (user 2 held on R2E0), the correction at step 6 (users
    # 2 and 3 on R6E1*), user 1 kept on R4E0 at steps 5-6, everyone past R5E1.
    assert observed_rows[2]["user2"] == ("2", "0")
    assert observed_rows[4]["user1"] == ("4", "0") and observed_rows[4]["user3"] == ("3", "1")
    assert observed_rows[5] == {"user1": ("4", "0"), "user2": ("6", "1*"), "user3": ("6", "1*")}
    assert observed_rows[7] == {"user1": ("6", "1*"), "user2": ("7", "1"), "user3": ("7", "1")}
