"""Turn a history (the JSON a run saves) into reproducers a person can run without snapconform:

- a standalone shell script: writes each fixture snap's files, packs it with mksquashfs, runs the
  `snap` commands in order, with the expected (model) and observed outcome of each as comments,
  and prints snapd's view (REST API) after each step;
- a spread task.yaml in the layout of snapd's tests/main (one directory per scenario, the fixture
  snap directories beside it), asserting what the model expected so it fails where snapd
  diverged.

Fixture trees are packed with mksquashfs rather than `snap pack` because `snap pack` validates
snap.yaml and would refuse the invalid epochs the bad-input scenarios need.

A store history (one with store steps) also ships `store/` beside them: the served store's
program with a copy of the model package it decides with (`program/`), and the catalog the run
served after each publisher step (`catalogs/step-NNN/`, `step-000` the empty store: catalog.json,
the .snap files and their signed assertions; never a key). The script (and the spread task's
prepare) starts that server on 127.0.0.1:8190 inside the host with systemd-run, as the harness
does, swaps the catalog at each publisher step, and prints what snapd asked it after each step.
snapd must be a test-keys build pointed at it (SNAPPY_FORCE_API_URL), as the store tier's is.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from snapconform.conformance.operations import (
    Operation,
    fixture_spec,
    operation_from_json,
)
from snapconform.conformance.ops_faults import reproducer_lines, spread_files
from snapconform.conformance.served import served_misbehave
from snapconform.conformance.store_steps import StoreOperation, StoreWorld
from snapconform.harness.fixtures import build_snap, snap_file_name, snap_tree
from snapconform.harness.store_carrier import program_files
from snapconform.images.snapd_build import testkeys_dir
from snapconform.model import snapd as model
from snapconform.served_store.assertions import TestKeys, TestKeysError
from snapconform.served_store.catalog import CatalogWriter, snaps_of

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
active = [s for s in revs if s["status"] == "active"]
if what == "revisions":
    print(" ".join(s["revision"] for s in revs))
elif what == "current":
    print(" ".join(s["revision"] for s in active))
elif what == "channel":
    print(" ".join(s.get("tracking-channel", "") for s in active))
else:
    tracking = [s["tracking-channel"] for s in active if s.get("tracking-channel")]
    print(" ".join(s["revision"] + ":" + s["status"] + ":" + s["version"] for s in revs)
          + "".join(" tracking " + t for t in tracking) or "not installed")' "$2"
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

STORE_PORT = 8190  # where the store tier's snapd asks (images.store_tier.STORE_URL)
STORE_UNIT = "snapconform-reproducer-store"
STORE_RUN_DIR = "/run/snapconform-reproducer-store"  # the served catalog's symlink, request log
DROP_IN = "/etc/systemd/system/snapd.service.d/snapconform-reproducer-store.conf"

# The store's helpers: is snapd pointed at it, start and stop it, serve another catalog, and
# what snapd asked it since the last call (POST /v2/snaps/refresh: context, actions, answers).
# `$here` is the directory holding store/.
STORE_HELPERS = f"""store_port={STORE_PORT}
store_unit={STORE_UNIT}
store_run_dir={STORE_RUN_DIR}
store_check() {{
    if ! systemctl show snapd.service -p Environment | grep -q \\
            "SNAPPY_FORCE_API_URL=http://127.0.0.1:$store_port"; then
        echo "snapd does not ask http://127.0.0.1:$store_port: it needs a snapd built with the"
        echo "test keys and a drop-in for snapd.service with"
        echo "  [Service]"
        echo "  Environment=SNAPPY_FORCE_API_URL=http://127.0.0.1:$store_port SNAPPY_TESTING=1"
        echo "(then systemctl daemon-reload; systemctl restart snapd)"
        exit 2
    fi
}}
store_start() {{
    systemd-run --unit="$store_unit" --collect --quiet --property=Type=notify \\
        --property=TimeoutStartSec=30 --setenv=PYTHONDONTWRITEBYTECODE=1 -- \\
        python3 "$here/store/program/server_program.py" --port "$store_port" \\
        --catalog "$store_run_dir/catalog" --log "$store_run_dir/requests.log" || {{
        journalctl -u "$store_unit" -o cat -n 20 --no-pager
        echo "cannot start the store"
        exit 2
    }}
}}
store_stop() {{
    systemctl stop "$store_unit" >/dev/null 2>&1 || true
    systemctl reset-failed "$store_unit" >/dev/null 2>&1 || true
}}
publish() {{
    # $1: the catalog the run's store served from this step on
    mkdir -p "$store_run_dir"
    ln -sfn "$here/store/catalogs/$1" "$store_run_dir/catalog.next"
    mv -T "$store_run_dir/catalog.next" "$store_run_dir/catalog"
    echo "# the store serves store/catalogs/$1"
}}
store_requests() {{
    # what snapd asked the store since the last call: printed, and its POSTs to
    # /v2/snaps/refresh described as the model's predictions are in $store_run_dir/step-requests
    python3 "$here/store/requests.py" "$store_run_dir"
}}"""

FIELD = re.compile(r"^(?P<name>[^.\[]+)(?:\[(?P<rev>[^\]]+)\])?\.(?P<what>\w+)$")


@dataclass(frozen=True)
class ReproStep:
    operation: Operation
    record: dict[str, Any]


def load_steps(history: dict[str, Any]) -> list[ReproStep]:
    return [
        ReproStep(operation_from_json(step["operation"]), step) for step in history.get("steps", [])
    ]


def is_store(steps: list[ReproStep]) -> bool:
    return any(isinstance(step.operation, StoreOperation) for step in steps)


def catalog_name(position: int) -> str:
    """The directory (under store/catalogs/) of the catalog served after step `position`."""
    return f"step-{position:03d}"


def store_worlds(steps: list[ReproStep]) -> dict[int, StoreWorld]:
    """The run's store after each publisher step, by step position (1-based; 0: the empty
    store every run starts from), replayed through the model as the run did."""
    world = StoreWorld()
    worlds = {0: world}
    for position, step in enumerate(steps, start=1):
        operation = step.operation
        if isinstance(operation, StoreOperation) and operation.publishes:
            world = operation.predict_store(model.new_state(), world)[1]
            worlds[position] = world
    return worlds


def write_store(
    steps: list[ReproStep], directory: Path, keys: TestKeys, cache_dir: Path | None = None
) -> list[Path]:
    """`directory`/store: the server program with the model package, and one signed catalog
    per publisher step (the keys sign here and are written nowhere)."""
    store = directory / "store"
    if store.exists():
        shutil.rmtree(store)
    for relative, data in program_files().items():
        path = store / "program" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # the same description of snapd's requests as the runs compare (stdlib only, runs there)
    (store / "requests.py").write_text(
        resources.files("snapconform.served_store")
        .joinpath("request_log.py")
        .read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    writer = CatalogWriter(keys)
    catalogs = []
    for position, world in store_worlds(steps).items():
        snaps = snaps_of(
            world.catalog, lambda snap: build_snap(fixture_spec(snap), cache_dir=cache_dir)
        )
        dest = store / "catalogs" / catalog_name(position)
        catalogs.append(writer.write(dest, snaps, served_misbehave(world.misbehaviour)))
    return catalogs


def _publisher_lines(position: int, worlds: dict[int, StoreWorld], down: bool) -> list[str]:
    """Serve the catalog of step `position`; stop or start the server when it goes down or
    comes back (Misbehaviour.down)."""
    lines = [f"publish {catalog_name(position)}"]
    now_down = worlds[position].misbehaviour.down
    if now_down and not down:
        lines.append("store_stop  # the store is down from here on")
    elif down and not now_down:
        lines.append("store_start  # the store is back")
    return lines


def _fixtures(steps: list[ReproStep]) -> dict[model.SnapFile, str]:
    """Each distinct fixture snap -> the directory name its files are written to."""
    dirs: dict[model.SnapFile, str] = {}
    for step in steps:
        # every operation that takes files names them (InstallFile, InstallMany, TryDir, an
        # Interrupted step's own step, ...); a publisher's files are served from store/
        if getattr(step.operation, "publishes", False):
            continue
        for snap in step.operation.snap_files():
            if snap not in dirs:
                dirs[snap] = snap_file_name(fixture_spec(snap)).removesuffix(".snap")
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
        if mismatch["field"] == "store_requests":
            expected = shlex.quote(" | ".join(map(str, mismatch["expected"] or [])))
            lines.append(f'check store_requests {expected} "$(cat "$store_run_dir/step-requests")"')
            continue
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
            "channel": f"snapd_view {quoted} channel",
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
    store = is_store(steps)
    worlds = store_worlds(steps) if store else {}
    host = history.get("host", {})
    recorded = f"{host.get('url', '?')} with {host.get('snapd', '?')}".replace("\n", " ")
    lines = [
        "#!/bin/bash",
        f"# {title}",
        f"# Recorded on {recorded}",
        "# Run as root on a machine with snapd (a throwaway VM or container): it installs and",
        "# removes the snaps named below. Needs mksquashfs (squashfs-tools), curl and python3.",
        "# Exits 1 when snapd still diverges from the model's expectation, 0 when it agrees.",
    ]
    if store:
        lines += [
            "# A store history: snapd must be built with the test keys and ask",
            f"# http://127.0.0.1:{STORE_PORT} (as on nspawn://RELEASE?snapd=testkeys); the store",
            "# (program, model, one catalog per publisher step) is in store/ beside this script",
            "# and runs as a transient systemd unit while the script runs. Exits 2 when it cannot.",
        ]
    lines += [
        "set -u",
        'here=$(cd "$(dirname "$0")" && pwd)',
        "work=$(mktemp -d)",
        'cd "$work"',
        SHELL_HELPERS,
        "",
    ]
    if store:
        lines += [
            STORE_HELPERS,
            "store_check",
            '[ -d "$here/store/catalogs" ] || { echo "no store/ beside this script"; exit 2; }',
            "store_stop",
            'rm -rf "$store_run_dir"; trap \'store_stop; rm -rf "$store_run_dir"\' EXIT',
            f"publish {catalog_name(0)}",
            "store_start",
            "",
        ]
    lines += reproducer_lines([step.operation for step in steps])
    for snap, directory in fixtures.items():
        lines.append(f"# fixture {snap.name} {snap.version} (epoch: {snap.epoch_yaml or '0'})")
        lines += _write_tree_commands(directory, snap)
        lines.append(PACK.format(dir=shlex.quote(directory), out=shlex.quote(f"{directory}.snap")))
        lines.append("")
    instances = _instances(steps)
    down = False
    commands = _commands(steps, fixtures, '"$work"/')
    for position, (step, command) in enumerate(zip(steps, commands, strict=True), start=1):
        lines.append(f"# step {step.record.get('step')}")
        lines += _outcome_comments(step.record)
        lines.append(f"echo + {shlex.quote(command)}")
        if position in worlds:
            lines += _publisher_lines(position, worlds, down)
            down = worlds[position].misbehaviour.down
            lines.append("")
            continue
        lines.append(command)
        if store:
            lines.append("store_requests")
        lines += _state_checks(step.record)
        lines.append("show " + " ".join(shlex.quote(name) for name in instances))
        lines.append("")
    lines.append("# clean up what the reproducer installed")
    for name in instances:
        lines.append(f"snap remove --purge {shlex.quote(name)} >/dev/null 2>&1 || true")
    lines.append('rm -rf "$work"')
    lines.append('exit "$status"')
    return "\n".join(lines) + "\n"


def expected_exit_zero(record: dict[str, Any]) -> bool:
    """Whether the model expected the step's command to exit 0: on success, and for the
    refusals the CLI prints and still exits 0 (`has no updates available`, ...). A record does
    not carry the exit code; its comparison does: an `outcome` mismatch names the expected
    exit, and without one a recorded refusal exited as expected."""
    expected = record.get("expected", {})
    if expected.get("ok"):
        return True
    for mismatch in record.get("mismatches", []):
        if mismatch.get("field") == "outcome":
            return str(mismatch.get("expected", "")).startswith("exit 0")
    observed = record.get("observed", {}).get("exit_code")
    return observed == 0 and expected.get("kind") is not None


def spread_task(history: dict[str, Any], summary: str) -> tuple[str, dict[str, str]]:
    """task.yaml text and the fixture files beside it ({relative path: content}); a store
    history's task also needs store/ beside it (write_reproducers copies it there)."""
    steps = load_steps(history)
    fixtures = _fixtures(steps)
    store = is_store(steps)
    worlds = store_worlds(steps) if store else {}
    files: dict[str, str] = {}
    for snap, directory in fixtures.items():
        for relative, (content, _mode) in snap_tree(fixture_spec(snap)).items():
            files[f"{directory}/{relative}"] = content.decode("utf-8")
    prepare = ["# hooks and the app are shell scripts: keep them executable after checkout"]
    fault_files, fault_prepare = spread_files([step.operation for step in steps])
    files.update(fault_files)
    prepare += fault_prepare
    for directory in fixtures.values():
        prepare.append(f"chmod -R a+rx {shlex.quote(directory)}/meta {shlex.quote(directory)}/bin")
        prepare.append(
            PACK.format(dir=shlex.quote(directory), out=shlex.quote(f"{directory}.snap"))
        )
    execute: list[str] = [SHELL_HELPERS]
    restore: list[str] = []
    if store:
        prepare += [
            "# the store: a snapd built with the test keys asks it at 127.0.0.1 (store/ holds",
            "# its program, the model it decides with and one catalog per publisher step)",
            "here=$PWD",
            STORE_HELPERS,
            f"mkdir -p {shlex.quote(str(Path(DROP_IN).parent))}",
            f"printf '[Service]\\nEnvironment=SNAPPY_FORCE_API_URL=http://127.0.0.1:{STORE_PORT}"
            f" SNAPPY_TESTING=1\\n' > {shlex.quote(DROP_IN)}",
            "systemctl daemon-reload",
            "systemctl restart snapd.service",
            "store_stop",
            f"publish {catalog_name(0)}",
            "store_start",
        ]
        execute = ["here=$PWD", SHELL_HELPERS, STORE_HELPERS]
        restore += [
            f"systemctl stop {STORE_UNIT} || true",
            f"rm -rf {STORE_RUN_DIR} {shlex.quote(DROP_IN)}",
            "systemctl daemon-reload",
            "systemctl restart snapd.service",
        ]
    down = False
    commands = _commands(steps, fixtures, "")
    for position, (step, command) in enumerate(zip(steps, commands, strict=True), start=1):
        expected = step.record.get("expected", {})
        execute += _outcome_comments(step.record)
        if position in worlds:
            execute += _publisher_lines(position, worlds, down)
            down = worlds[position].misbehaviour.down
            continue
        message = "" if expected.get("ok") else " ".join(str(expected.get("error") or "").split())
        if expected.get("ok"):
            execute.append(command)
        elif expected_exit_zero(step.record):
            execute.append(f"{command} > err.out 2>&1")
        else:
            execute.append(f"not {command} > err.out 2>&1")
        if store:
            execute.append("store_requests")
        if message and expected.get("kind") != "store-refused":  # those are patterns
            # MATCH takes a regular expression: match the message's first words literally.
            words = " ".join(message.split()[:8])
            escaped = "".join("\\" + c if c in r".[]()*+?{}|^$\\" else c for c in words)
            execute.append(f"tr -s ' \\n' ' ' < err.out | MATCH {shlex.quote(escaped)}")
        execute += _state_checks(step.record)
    execute.append('exit "$status"')
    restore = [
        *(f"snap remove --purge {shlex.quote(name)} || true" for name in _instances(steps)),
        *restore,
    ]
    details = (
        "Generated by snapconform from a recorded history: each step's expected "
        "outcome comes from the reference model; a comment gives what snapd did."
    )
    if store:
        details += (
            " A store history: it needs snapd built with the test keys; prepare points snapd at"
            " the store in store/ (served on 127.0.0.1) and restore puts snapd back."
        )
    task = {
        "summary": summary,
        "details": details,
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


class ReproducerError(ValueError):
    """A reproducer cannot be written (one line saying why)."""


def cached_test_keys(history: dict[str, Any]) -> TestKeys:
    """The test keys of the cached test-keys snapd build of the release the history ran on
    (they sign the catalogs a store history's reproducer serves)."""
    release = str(history.get("host", {}).get("release") or "")
    found = testkeys_dir(release) if release else None
    if found is None:
        raise ReproducerError(
            "a store history's reproducer serves catalogs signed with the test keys of its"
            f" snapd build, and no test-keys build of {release or 'its release'!r} is cached"
            " here (running on nspawn://RELEASE?snapd=testkeys builds one)"
        )
    try:
        return TestKeys.load(found)
    except TestKeysError as exc:
        raise ReproducerError(f"cannot sign the reproducer's catalogs: {exc}") from None


def write_reproducers(
    history: dict[str, Any],
    directory: Path,
    summary: str,
    *,
    keys: TestKeys | None = None,
    cache_dir: Path | None = None,
) -> list[Path]:
    """Write reproduce.sh and spread/<task>/task.yaml (+ fixtures) into directory; for a store
    history also store/ beside each (signed with `keys`: the test keys of the snapd build the
    history ran on, by default the cached build's; used here and written nowhere)."""
    steps = load_steps(history)
    if is_store(steps) and keys is None:
        keys = cached_test_keys(history)
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
    written = [script, task_dir / "task.yaml"]
    if keys is not None and is_store(steps):
        write_store(steps, directory, keys, cache_dir)
        written.append(directory / "store")
        if (task_dir / "store").exists():
            shutil.rmtree(task_dir / "store")
        shutil.copytree(directory / "store", task_dir / "store")
    return written
