"""Bad release plans: one clear line naming the file, the entry and the problem; the CLI exits 2
with that line and no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from snapconform.model.plan import PlanError, evaluate, parse_plan

USERS = "users:\n  u: {channel: stable, from: 1}\n"
STEPS = "steps:\n  - {revision: 1, epoch: '0', channel: stable}\n"
TWO = "channels: [stable, candidate]\n"


def step_list(*steps: str) -> str:
    return "steps:\n" + "".join(f"  - {{{s}}}\n" for s in steps)


# (case id, plan text, the entry named, the problem's words)
BAD_PLANS = [
    ("malformed-yaml", "users: [\n", "line 2, column 1", "malformed YAML"),
    ("tab", "users:\n\t- x\n", "line 2, column 1", "malformed YAML"),
    ("empty", "", None, "the plan is empty"),
    ("not-a-mapping", "- 1\n", None, "the plan must be a mapping with channels, users, steps"),
    ("unknown-top-key", USERS + STEPS + "extra: 1\n", None, 'unknown key "extra"'),
    ("no-users", STEPS, None, 'no "users"'),
    ("no-steps", USERS, None, 'no "steps"'),
    ("channels-scalar", "channels: stable\n" + USERS + STEPS, "channels", "non-empty list"),
    ("channels-twice", "channels: [stable, stable]\n" + USERS + STEPS, "channels[1]", "twice"),
    ("channels-track", "channels: [latest/stable]\n" + USERS + STEPS, "channels[0]", "plain risk"),
    (
        "unknown-channel-in-step",
        TWO + USERS + step_list("revision: 1, channel: beta"),
        "steps[0] (step 1)",
        'unknown channel "beta" (channels: stable, candidate)',
    ),
    (
        "unknown-channel-for-user",
        TWO + "users:\n  u: {channel: edge, from: 1}\n" + STEPS,
        "users.u",
        'unknown channel "edge"',
    ),
    (
        "epoch-changed",
        USERS
        + step_list(
            "revision: 4, epoch: '0', channel: stable",
            "revision: 5, epoch: '0', channel: stable",
            "revision: 6, epoch: '0', channel: stable",
            'revision: 5, epoch: "1", channel: candidate',
        ),
        "steps[3] (step 4)",
        'revision 5 was released with epoch 0 at step 2, not "1"',
    ),
    (
        "epoch-changed-unquoted",
        USERS
        + step_list(
            "revision: 5, epoch: 1*, channel: stable", "revision: 5, channel: stable, epoch: 2"
        ),
        "steps[1] (step 2)",
        'revision 5 was released with epoch 1* at step 1, not "2"',
    ),
    (
        "invalid-epoch",
        USERS + step_list("revision: 1, epoch: 0*, channel: stable"),
        "steps[0] (step 1)",
        'invalid epoch "0*": 0* is an invalid epoch',
    ),
    (
        "invalid-epoch-lists",
        USERS + step_list("revision: 1, epoch: {read: [0], write: [1]}, channel: stable"),
        "steps[0] (step 1)",
        "epoch read and write lists must have a non-empty intersection",
    ),
    (
        "invalid-epoch-number",
        USERS + step_list("revision: 1, epoch: 0xA, channel: stable"),
        "steps[0] (step 1)",
        'epoch numbers must be base 10 with no zero padding, but got "0xA"',
    ),
    ("user-without-channel", "users:\n  u: {from: 1}\n" + STEPS, "users.u", "no channel"),
    ("user-null-channel", "users:\n  u: {channel: , from: 1}\n" + STEPS, "users.u", "plain value"),
    ("user-without-from", "users:\n  u: {channel: stable}\n" + STEPS, "users.u", 'no "from"'),
    (
        "from-zero",
        "users:\n  u: {channel: stable, from: 0}\n" + STEPS,
        "users.u",
        "from 0 is out of range",
    ),
    (
        "from-too-late",
        "users:\n  u: {channel: stable, from: 9}\n" + STEPS,
        "users.u",
        "(the steps are 1..1)",
    ),
    (
        "from-not-a-number",
        "users:\n  u: {channel: stable, from: x}\n" + STEPS,
        "users.u",
        "step number",
    ),
    (
        "user-unknown-key",
        "users:\n  u: {channel: stable, from: 1, colour: red}\n" + STEPS,
        "users.u",
        'unknown key "colour" (expected channel, from)',
    ),
    ("user-not-mapping", "users:\n  u: stable\n" + STEPS, "users.u", "must be a mapping"),
    ("users-a-list", "users: [u]\n" + STEPS, "users", "must be a mapping"),
    (
        "user-twice",
        "users:\n  u: {channel: stable, from: 1}\n  u: {channel: stable, from: 1}\n" + STEPS,
        "users.u",
        "is given twice",
    ),
    (
        "step-unknown-key",
        USERS + step_list("revision: 1, channel: stable, track: x"),
        "steps[0] (step 1)",
        'unknown key "track"',
    ),
    ("step-not-mapping", USERS + "steps:\n  - R1E0\n", "steps[0] (step 1)", "must be a mapping"),
    (
        "step-without-revision",
        USERS + step_list("channel: stable"),
        "steps[0] (step 1)",
        'no "revision"',
    ),
    ("step-without-channel", USERS + step_list("revision: 1"), "steps[0] (step 1)", 'no "channel"'),
    (
        "revision-not-a-number",
        USERS + step_list("revision: R1, channel: stable"),
        "steps[0] (step 1)",
        'revision must be a positive whole number, not "R1"',
    ),
    (
        "revision-negative",
        USERS + step_list("revision: -1, channel: stable"),
        "steps[0] (step 1)",
        '"-1"',
    ),
    (
        "key-twice-in-step",
        USERS + step_list("revision: 1, revision: 2, channel: stable"),
        "steps[0] (step 1)",
        '"revision" is given twice',
    ),
    ("steps-empty", USERS + "steps: []\n", "steps", "non-empty list"),
    ("steps-a-mapping", USERS + "steps: {a: 1}\n", "steps", "non-empty list"),
]


@pytest.mark.parametrize(
    ("text", "entry", "problem"),
    [case[1:] for case in BAD_PLANS],
    ids=[case[0] for case in BAD_PLANS],
)
def test_bad_plan_is_one_line_naming_file_entry_and_problem(text, entry, problem):
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml")
    message = str(caught.value)
    assert "\n" not in message
    expected_start = f"plan.yaml: {entry}: " if entry else "plan.yaml: "
    assert message.startswith(expected_start), message
    assert problem in message, message


def test_the_brief_example_message():
    text = USERS + step_list(
        "revision: 1, epoch: '0', channel: stable",
        "revision: 5, epoch: '0', channel: stable",
        "revision: 2, epoch: '0', channel: stable",
        'revision: 5, epoch: "1", channel: stable',
    )
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml")
    assert str(caught.value) == (
        'plan.yaml: steps[3] (step 4): revision 5 was released with epoch 0 at step 2, not "1"'
    )


def test_promotion_may_omit_or_repeat_the_epoch():
    text = USERS + step_list(
        "revision: 1, epoch: 1*, channel: stable",
        "revision: 1, channel: stable",
        "revision: 1, epoch: {read: [0, 1], write: [1]}, channel: stable",
    )
    plan = parse_plan(text, "plan.yaml")
    assert {str(step.epoch) for step in plan.steps} == {"1*"}


def test_new_revision_without_epoch_is_epoch_0():
    plan = parse_plan(USERS + step_list("revision: 1, channel: stable"), "plan.yaml")
    assert str(plan.steps[0].epoch) == "0"


def test_a_user_with_nothing_to_install_waits():
    text = "users:\n  u: {channel: stable, from: 1}\n" + step_list(
        "revision: 1, channel: edge", "revision: 2, channel: stable"
    )
    table = evaluate(parse_plan(text, "plan.yaml"))
    assert table.rows[0].cells["u"] is None
    assert table.rows[1].cells["u"].revision == 2


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapconform", "table", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_bad_plan_exits_2_with_one_line_and_no_traceback(tmp_path):
    plan = tmp_path / "bad.yaml"
    plan.write_text(USERS + step_list("revision: 1, epoch: 0*, channel: stable"))
    result = run_cli(str(plan))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr == (
        f"snapconform table: {plan}: steps[0] (step 1): "
        'invalid epoch "0*": 0* is an invalid epoch\n'
    )


def test_cli_malformed_yaml_exits_2(tmp_path):
    plan = tmp_path / "broken.yaml"
    plan.write_text("users: [\n")
    result = run_cli(str(plan), "--format", "json")
    assert result.returncode == 2
    assert result.stderr.startswith(f"snapconform table: {plan}: line 2, column 1: malformed YAML")
    assert "Traceback" not in result.stderr


def test_cli_missing_file_exits_2(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = run_cli(str(missing))
    assert result.returncode == 2
    assert result.stderr == f"snapconform table: cannot read {missing}: No such file or directory\n"


def test_cli_not_utf8_exits_2(tmp_path):
    plan = tmp_path / "latin1.yaml"
    plan.write_bytes(b"users: \xff\n")
    result = run_cli(str(plan))
    assert result.returncode == 2
    assert result.stderr.startswith(f"snapconform table: cannot read {plan}: ")
    assert "Traceback" not in result.stderr
