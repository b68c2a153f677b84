"""Turn a history (the JSON a run saves) into reproducers a person can run without snapconform:

- a standalone shell script: writes each fixture snap's files, packs it with mksquashfs, runs the
  `snap` commands in order, with the expected (model) and observed outcome of each as comments,
  and prints snapd's view (REST API) after each step;
- a spread task.yaml in the layout of snapd's tests/main (one directory per scenario, the fixture
  snap directories beside it), asserting what the model expected so it fails where snapd
  diverged.

Fixture trees are packed with mksquashfs rather than `snap pack` because `snap pack` validates
snap.yaml and would refuse the invalid epochs the bad-input scenarios need.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from snapconform.conformance.operations import (
    InstallFile,
    Operation,
    fixture_spec,
    operation_from_json,
)
from snapconform.harness.fixtures import snap_file_name, snap_tree
from snapconform.model import snapd as model

PACK = "mksquashfs {dir} {out} -noappend -comp xz -all-root -no-xattrs -no-fragments >/dev/null"

# Shell helpers shared by the script and the spread task: snapd's own view over its REST API,
# the entries of a data directory, and a check that prints (and counts) a divergence.
SHELL_HELPERS = """status=0
snapd_view() {
    # $1: instance; $2: revisions | current | summary
    curl -sS --unix-socket /run/snapd.socket \\
        "http://localhost/v2/snaps?select=all&snaps=$1" | python3 -c '
import json, sys
result, what = json.load(sys.stdin).get("result"), sys.argv[1]
revs = result if isinstance(result, list) else []
if what == "revisions":
    print(" ".join(s["revision"] for s in revs))
elif what == "current":
    print(" ".join(s["revision"] for s in revs if s["status"] == "active"))
else:
    print(" ".join(s["revision"] + ":" + s["status"] + ":" + s["version"] for s in revs)
          or "not installed")' "$2"
}
entries() { ls -A "$1" 2>/dev/null | grep -v '[.]old$' | sort | xargs; }
check() {
    # $1: what; $2: expected (the model); $3: observed (snapd)
    if [ "$2" = "$3" ]; then
        echo "ok: $1 = '$3'"
    else
        echo "DIVERGES: $1: the model expects '$2', snapd has '$3'"
        status=1
    fi
}
show() { for name in "$@"; do echo "# $name: $(snapd_view "$name" summary)"; done; }"""

FIELD = re.compile(r"^(?P<name>[^.\[]+)(?:\[(?P<rev>[^\]]+)\])?\.(?P<what>\w+)$")


@dataclass(frozen=True)
class ReproStep:
    operation: Operation
    record: dict[str, Any]


def load_steps(history: dict[str, Any]) -> list[ReproStep]:
    return [
        ReproStep(operation_from_json(step["operation"]), step) for step in history.get("steps", [])
    ]


def _fixtures(steps: list[ReproStep]) -> dict[model.SnapFile, str]:
    """Each distinct fixture snap -> the directory name its files are written to."""
    dirs: dict[model.SnapFile, str] = {}
    for step in steps:
        if isinstance(step.operation, InstallFile) and step.operation.snap not in dirs:
            spec = fixture_spec(step.operation.snap)
            dirs[step.operation.snap] = snap_file_name(spec).removesuffix(".snap")
    return dirs


def _write_tree_commands(directory: str, snap: model.SnapFile) -> list[str]:
    lines: list[str] = []
    for relative, (content, mode) in sorted(snap_tree(fixture_spec(snap)).items()):
        path = f"{directory}/{relative}"
        text = content.decode("utf-8")
        marker = "SNAPCONFORM_EOF"
        while marker in text:
            marker += "_"
        lines.append(f"mkdir -p {shlex.quote(str(Path(path).parent))}")
        lines.append(f"cat > {shlex.quote(path)} <<'{marker}'")
        lines.append(text.rstrip("\n"))
        lines.append(marker)
        lines.append(f"chmod {mode:o} {shlex.quote(path)}")
    return lines


def _comment(prefix: str, text: str | None) -> list[str]:
    if not text:
        return [f"# {prefix}"]
    body = text.strip().splitlines() or [""]
    return [f"# {prefix} {body[0]}"] + [f"#     {line}" for line in body[1:]]


def _outcome_comments(record: dict[str, Any]) -> list[str]:
    expected, observed = record.get("expected", {}), record.get("observed", {})
    lines = _comment(
        "expected:",
        "success" if expected.get("ok") else f"error: {expected.get('error')}",
    )
    lines += _comment("  because:", expected.get("why"))
    if observed.get("exit_code") is not None:
        lines += _comment(
            "observed:",
            "success"
            if observed.get("exit_code") == 0
            else f"exit {observed.get('exit_code')}, error: {observed.get('error')}",
        )
    for mismatch in record.get("mismatches", []):
        lines.append(
            f"# DIVERGENCE {mismatch['field']}: expected {mismatch['expected']!r}, "
            f"observed {mismatch['observed']!r}"
        )
    return lines


def _words(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value)
    return "" if value is None else str(value)


def _state_checks(record: dict[str, Any]) -> list[str]:
    """A `check` line (the model's expected value against snapd's) per mismatched field that
    a shell can observe; the others stay as the DIVERGENCE comments above the step."""
    lines: list[str] = []
    for mismatch in record.get("mismatches", []):
        match = FIELD.match(mismatch["field"])
        if not match:
            continue
        name, rev, what = match.group("name", "rev", "what")
        expected = shlex.quote(_words(mismatch["expected"]))
        quoted = shlex.quote(name)
        observe = {
            "sequence": f"snapd_view {quoted} revisions",
            "current": f"snapd_view {quoted} current",
            "common": f"entries /var/snap/{quoted}/common",
            "data_dirs": f"entries /var/snap/{quoted}",
            "data": f"entries /var/snap/{quoted}/{shlex.quote(rev or '')}",
        }.get(what)
        if observe and (what != "data" or rev):
            label = shlex.quote(mismatch["field"])
            lines.append(f'check {label} {expected} "$({observe})"')
    return lines


def _file_token(index: int) -> str:
    # shlex leaves @ unquoted, so the token survives shlex.join and is replaced afterwards.
    return f"@@FIXTURE{index}@@"


def _commands(
    steps: list[ReproStep], fixtures: dict[model.SnapFile, str], prefix: str
) -> list[str]:
    """Each step's command, with fixture files at PREFIX/<dir>.snap (file names are safe)."""
    tokens = {snap: _file_token(i) for i, snap in enumerate(fixtures)}
    commands = []
    for step in steps:
        command = step.operation.shell(lambda snap: tokens[snap])
        for snap, token in tokens.items():
            command = command.replace(token, f"{prefix}{fixtures[snap]}.snap")
        commands.append(command)
    return commands


def _instances(steps: list[ReproStep]) -> list[str]:
    seen: list[str] = []
    for step in steps:
        for name in step.operation.instances:
            if name not in seen:
                seen.append(name)
    return seen


def shell_script(history: dict[str, Any], title: str = "snapconform reproducer") -> str:
    steps = load_steps(history)
    fixtures = _fixtures(steps)
    host = history.get("host", {})
    recorded = f"{host.get('url', '?')} with {host.get('snapd', '?')}".replace("\n", " ")
    lines = [
        "#!/bin/bash",
        f"# {title}",
        f"# Recorded on {recorded}",
        "# Run as root on a machine with snapd (a throwaway VM or container): it installs and",
        "# removes the snaps named below. Needs mksquashfs (squashfs-tools), curl and python3.",
        "# Exits 1 when snapd still diverges from the model's expectation, 0 when it agrees.",
        "set -u",
        "work=$(mktemp -d)",
        'cd "$work"',
        SHELL_HELPERS,
        "",
    ]
    for snap, directory in fixtures.items():
        lines.append(f"# fixture {snap.name} {snap.version} (epoch: {snap.epoch_yaml or '0'})")
        lines += _write_tree_commands(directory, snap)
        lines.append(PACK.format(dir=shlex.quote(directory), out=shlex.quote(f"{directory}.snap")))
        lines.append("")
    instances = _instances(steps)
    for step, command in zip(steps, _commands(steps, fixtures, '"$work"/'), strict=True):
        lines.append(f"# step {step.record.get('step')}")
        lines += _outcome_comments(step.record)
        lines.append(f"echo + {shlex.quote(command)}")
        lines.append(command)
        lines += _state_checks(step.record)
        lines.append("show " + " ".join(shlex.quote(name) for name in instances))
        lines.append("")
    lines.append("# clean up what the reproducer installed")
    for name in instances:
        lines.append(f"snap remove --purge {shlex.quote(name)} >/dev/null 2>&1 || true")
    lines.append('rm -rf "$work"')
    lines.append('exit "$status"')
    return "\n".join(lines) + "\n"


def spread_task(history: dict[str, Any], summary: str) -> tuple[str, dict[str, str]]:
    """task.yaml text and the fixture files beside it ({relative path: content})."""
    steps = load_steps(history)
    fixtures = _fixtures(steps)
    files: dict[str, str] = {}
    for snap, directory in fixtures.items():
        for relative, (content, _mode) in snap_tree(fixture_spec(snap)).items():
            files[f"{directory}/{relative}"] = content.decode("utf-8")
    prepare = ["# hooks and the app are shell scripts: keep them executable after checkout"]
    for directory in fixtures.values():
        prepare.append(f"chmod -R a+rx {shlex.quote(directory)}/meta {shlex.quote(directory)}/bin")
        prepare.append(
            PACK.format(dir=shlex.quote(directory), out=shlex.quote(f"{directory}.snap"))
        )
    execute: list[str] = [SHELL_HELPERS]
    for step, command in zip(steps, _commands(steps, fixtures, ""), strict=True):
        expected = step.record.get("expected", {})
        execute += _outcome_comments(step.record)
        if expected.get("ok"):
            execute.append(command)
        else:
            message = " ".join(str(expected.get("error") or "").split())
            execute.append(f"not {command} > err.out 2>&1")
            if message:
                # MATCH takes a regular expression: match the message's first words literally.
                words = " ".join(message.split()[:8])
                escaped = "".join("\\" + c if c in r".[]()*+?{}|^$\\" else c for c in words)
                execute.append(f"tr -s ' \\n' ' ' < err.out | MATCH {shlex.quote(escaped)}")
        execute += _state_checks(step.record)
    execute.append('exit "$status"')
    restore = [f"snap remove --purge {shlex.quote(name)} || true" for name in _instances(steps)]
    task = {
        "summary": summary,
        "details": "Generated by snapconform from a recorded history: each step's expected "
        "outcome comes from the reference model; a comment gives what snapd did.",
        "prepare": "\n".join(prepare) + "\n",
        "execute": "\n".join(execute) + "\n",
        "restore": "\n".join(restore) + "\n",
    }
    return yaml.dump(task, Dumper=_BlockDumper, sort_keys=False, width=100), files


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, the way spread tasks are written by hand."""


def _block_string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _block_string)


def write_reproducers(history: dict[str, Any], directory: Path, summary: str) -> list[Path]:
    """Write reproduce.sh and spread/<task>/task.yaml (+ fixtures) into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "reproduce.sh"
    script.write_text(shell_script(history, summary), encoding="utf-8")
    script.chmod(0o755)
    task_text, files = spread_task(history, summary)
    task_dir = directory / "spread" / "snapconform-reproducer"
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "task.yaml").write_text(task_text, encoding="utf-8")
    for relative, content in files.items():
        path = task_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return [script, task_dir / "task.yaml"]
