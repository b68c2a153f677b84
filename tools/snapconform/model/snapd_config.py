"""A snap's configuration: `snap set/get NAME`, the configure hook, and per-revision copies.

Facts (canonical/snapd 2.57.6; unchanged in 2.68.3 and 2.77.1 where cited):
- `snap set NAME k=v` decodes v as JSON, else takes the string (cmd/snap/cmd_set.go). It runs
  one task, "Run configure hook of %q snap" (not "if present": the patch is not empty), so a
  snap without a configure hook refuses it with `snap %q has no "configure" hook`
  (overlord/configstate/configstate.go Configure, overlord/hookstate/hookmgr.go runHook). The
  hook sees the patched values; the patch is committed only when the hook succeeds.
- Until a first `snap set` commits, snapd holds no configuration entry for the snap
  (config.Transaction.Commit writes only changes).
- link-snap of an installed snap (refresh, revert) saves the current configuration as the old
  current revision's copy (config.SaveRevisionConfig; nothing when there is no entry); on a
  revert only it then restores the target revision's copy if there is one
  (RestoreRevisionConfig; overlord/snapstate/handlers.go doLinkSnap). undoLinkSnap restores
  the old current's copy (a rollback puts back the configuration as it was); an undone first
  install deletes it (DeleteSnapConfig).
- Discarding a revision drops its copy (DiscardRevisionConfig in doDiscardSnap); the last one
  deletes the snap's configuration (DeleteSnapConfig).
- `snapctl get KEY` prints a string as it is, other values as JSON, and nothing for a key
  that is unset (the fixture hook logs what it printed).
- A dotted key `a.b=v` patches the map at `a` key by key (no value: `{"b": v}`), and v
  replaces whatever was at `a.b` whole (config/transaction.go applyChanges, commitChange).
  Through a value that is set and not a map (committed, or set by the same command) it is
  refused before the hook runs: `snap "NAME" option "a" is not a map` (Transaction.Set,
  getFromConfig, PatchConfig; seen on 2.57.6); `snap get` through one says the same.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from snapconform.model import snapd_text as text
from snapconform.model.snapd_state import (
    ConfigRead,
    ExpectedError,
    HookRun,
    InstanceState,
    ModelGap,
    Outcome,
    RevisionState,
    SnapdState,
)

__all__ = [
    "REFUSED_VALUE_PREFIX",
    "after_fresh_install",
    "after_refresh",
    "after_remove",
    "after_remove_revision",
    "after_revert",
    "config_dict",
    "get_config",
    "set_snap_config",
]

# The fixture hook refuses a value starting with this (snaps/templates/hook.sh).
REFUSED_VALUE_PREFIX = "bad"
SET_SUMMARY = "Run configure hook of {} snap"  # configstate.go Configure with a patch
NO_CONFIGURE_HOOK = 'snap {} has no "configure" hook'  # hookmgr.go runHook
NO_OPTION = "snap {} has no {} configuration option"  # daemon/api_snap_conf.go getSnapConf
NOT_A_MAP = "snap {} option {} is not a map"  # config/transaction.go getFromConfig
# `snap run --hook` of a disabled snap (its current link is gone): what the hook task reports
DISABLED_HOOK_RUN = (
    "error: cannot find current revision for snap {name}: readlink /snap/{name}/current: "
    "no such file or directory"
)
# An option name's parts (overlord/configstate/config/helpers.go validKey)
VALID_SUBKEY = re.compile(r"(?:[a-z0-9]+-?)*[a-z](?:-?[a-z0-9])*")


Config = tuple[tuple[str, str], ...]


def cli_value(value: str) -> str:
    """VALUE of `snap set NAME KEY=VALUE` as the JSON snapd stores (cmd_set.go)."""
    try:
        decoded = json.loads(value)
    except ValueError:
        decoded = value
    return json.dumps(decoded, sort_keys=True)


def printed(json_text: str | None) -> str:
    """What `snapctl get KEY` prints for a stored value (None: unset prints nothing)."""
    if json_text is None:
        return ""
    value = json.loads(json_text)
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        raise ModelGap("the model does not render objects the way snapctl prints them")
    return json.dumps(value)


def config_dict(instance: InstanceState | None) -> dict[str, object]:
    """The configuration as REST /v2/snaps/NAME/conf returns it ({} when there is none)."""
    if instance is None or instance.config is None:
        return {}
    return {key: json.loads(value) for key, value in instance.config}


def _sorted(config: dict[str, str]) -> Config:
    return tuple(sorted(config.items()))


def _snapshots(instance: InstanceState) -> dict[str, Config]:
    return dict(instance.revision_config)


def _with_snapshots(instance: InstanceState, snapshots: dict[str, Config]) -> InstanceState:
    return replace(instance, revision_config=tuple(sorted(snapshots.items())))


def _save(instance: InstanceState, revision: str) -> InstanceState:
    if instance.config is None:
        return instance
    snapshots = _snapshots(instance)
    snapshots[revision] = instance.config
    return _with_snapshots(instance, snapshots)


def _restore(instance: InstanceState, revision: str) -> InstanceState:
    snapshot = _snapshots(instance).get(revision)
    return instance if snapshot is None else replace(instance, config=snapshot)


def _reads(
    revisions: tuple[RevisionState, ...], runs: tuple[HookRun, ...], config: Config | None
) -> tuple[ConfigRead, ...]:
    """The values the hooks among ``runs`` that read configuration print, seeing ``config``
    (``revisions``: where to find the revision each hook ran in)."""
    values = dict(config or ())
    reads = []
    for run in runs:
        revision = next((r for r in revisions if r.revision == run.revision), None)
        plan = revision.hook(run.hook) if revision else None
        for key in plan.reads_config if plan else ():
            shown = printed(values.get(key))
            reads.append(ConfigRead(run.instance, run.hook, run.revision, key, shown))
    return tuple(reads)


def _refusing(reads: tuple[ConfigRead, ...]) -> ConfigRead | None:
    return next((r for r in reads if r.value.startswith(REFUSED_VALUE_PREFIX)), None)


def _no_refusal_inside_a_change(reads: tuple[ConfigRead, ...]) -> None:
    refused = _refusing(reads)
    if refused is not None:
        raise ModelGap(
            f"{refused.hook} of {refused.instance} {refused.revision} would refuse "
            f"{refused.key}={refused.value} inside a change; the model runs hooks by their "
            "fails_with only"
        )


def _put(
    outcome: Outcome, instance: InstanceState | None, reads: tuple[ConfigRead, ...]
) -> Outcome:
    state = outcome.state if instance is None else outcome.state.with_instance(instance)
    return replace(outcome, state=state, config_reads=outcome.config_reads + reads)


# -- the changes ------------------------------------------------------------------------------


def after_fresh_install(outcome: Outcome, revision: RevisionState) -> Outcome:
    """A first install has no configuration: its hooks read nothing set (also when one of
    them fails and the install is undone)."""
    reads = _reads((revision,), outcome.hooks_run, None)
    _no_refusal_inside_a_change(reads)
    return _put(outcome, None, reads)


def after_refresh(
    before: InstanceState,
    target: RevisionState,
    outcome: Outcome,
    *,
    aborted: bool,
) -> Outcome:
    """link-snap saves the current configuration as the old revision's copy; the target's
    hooks see it unchanged; an undo restores that copy (the same values); the discarded
    revisions' copies go."""
    reads = _reads((target, *before.sequence), outcome.hooks_run, before.config)
    _no_refusal_inside_a_change(reads)
    after = outcome.state.instance(before.name)
    if after is None or aborted:
        return _put(outcome, None, reads)
    saved = _save(before, before.current)
    snapshots = {r: c for r, c in _snapshots(saved).items() if r not in outcome.discarded}
    updated = _with_snapshots(replace(after, config=before.config), snapshots)
    return _put(outcome, updated, reads)


def after_revert(before: InstanceState, outcome: Outcome, target: str) -> Outcome:
    """link-snap saves the current configuration as the old current's copy and restores the
    target's copy if it has one; the configure hook sees that; a failed revert restores the old
    current's copy."""
    after = outcome.state.instance(before.name)
    if after is None:
        return outcome
    saved = _save(before, before.current)
    restored = _restore(saved, target)
    reads = _reads(before.sequence, outcome.hooks_run, restored.config)
    _no_refusal_inside_a_change(reads)
    config = before.config if outcome.error is not None else restored.config
    updated = replace(after, config=config, revision_config=saved.revision_config)
    return _put(outcome, updated, reads)


def after_remove(before: InstanceState, outcome: Outcome) -> Outcome:
    """A full remove's remove hook sees the configuration the snap had (it goes afterwards:
    DeleteSnapConfig in doDiscardSnap; found by the state machine on 2.68.3)."""
    reads = _reads(before.sequence, outcome.hooks_run, before.config)
    return replace(outcome, config_reads=outcome.config_reads + reads)


def after_remove_revision(outcome: Outcome, instance_name: str, revision: str) -> Outcome:
    after = outcome.state.instance(instance_name)
    if after is None:
        return outcome
    snapshots = {r: c for r, c in _snapshots(after).items() if r != revision}
    return _put(outcome, _with_snapshots(after, snapshots), ())


# -- snap set / snap get ------------------------------------------------------------------------


def set_snap_config(
    state: SnapdState, instance_name: str, pairs: tuple[tuple[str, str], ...]
) -> Outcome:
    """`snap set NAME KEY=VALUE...`: the configure hook of the current revision, with the patch."""
    if not pairs:
        raise ModelGap("snap set with nothing to set is refused by the CLI; not modelled")
    for key, value in pairs:
        if not all(VALID_SUBKEY.fullmatch(part) for part in key.split(".")):
            raise ModelGap(f"key {key!r}: the model has no text for an invalid option name")
        if json.loads(cli_value(value)) is None:
            raise ModelGap(f"{key}={value}: a null unsets; the model does not unset options")
    found = state.instance(instance_name)
    quoted = text.go_quote(instance_name)
    if found is None:
        return Outcome(
            state,
            ExpectedError("not-installed", text.NOT_INSTALLED.format(quoted)),
            (),
            f"refused: {instance_name} is not installed (configstate.go canConfigure)",
        )
    summary = SET_SUMMARY.format(quoted)
    current = found.current_revision
    hook = current.hook("configure")
    if hook is None:
        return Outcome(
            state,
            ExpectedError(
                "no-configure-hook", text.change_error(summary, NO_CONFIGURE_HOOK.format(quoted))
            ),
            (),
            f"{current.revision} has no configure hook and a patch makes the hook task "
            "mandatory: the change fails and nothing is set (hookmgr.go runHook)",
        )
    if not found.active:
        failure = DISABLED_HOOK_RUN.format(name=instance_name)
        return Outcome(
            state,
            ExpectedError(
                "hook-failed", text.change_error(summary, text.hook_error("configure", failure))
            ),
            (),
            f"{instance_name} is disabled: the hook task runs `snap run --hook`, which finds "
            "no /snap/NAME/current, so the hook fails before its script and nothing is "
            "committed (seen on 2.57.6)",
        )
    patched = dict(found.config or ())
    changes: dict[str, str] = {}
    # shallow keys first (config/helpers.go sortPatchKeysByDepth)
    for key, value in sorted(pairs, key=lambda pair: pair[0].count(".")):
        blocked = _walk(found.config, key)[0] or _walk(_sorted(changes), key)[0]
        if blocked is not None:
            message = NOT_A_MAP.format(quoted, text.go_quote(blocked))
            return Outcome(
                state,
                ExpectedError("not-a-map", text.change_error(summary, message)),
                (),
                f"{key} goes through {blocked}, which is set and not a map: Transaction.Set "
                "refuses it before the hook runs (config/transaction.go Set, getFromConfig; "
                "helpers.go PatchConfig for a value set in the same command)",
            )
        _patch(patched, key, cli_value(value))
        _patch(changes, key, cli_value(value))
    run = HookRun(instance_name, "configure", current.revision)
    reads = _reads(found.sequence, (run,), _sorted(patched))
    refused = _refusing(reads)
    failure = f"refusing {refused.key}={refused.value}" if refused is not None else hook.fails_with
    if hook.marker is not None:
        # the hook writes its marker before it reads or fails (snaps/templates/hook.sh)
        data = dict(found.data)
        data[current.revision] = data[current.revision] | {hook.marker}
        found = replace(found, data=tuple(data.items()), common=found.common | {hook.marker})
        state = state.with_instance(found)
    if failure is not None:
        message = text.change_error(summary, text.hook_error("configure", failure))
        return Outcome(
            state,
            ExpectedError("hook-failed", message),
            (run,),
            f"the configure hook of {current.revision} failed with the patch, so nothing is "
            "committed: the configuration stays as it was (configstate.go, hookmgr.go)",
            config_reads=reads,
        )
    return Outcome(
        state.with_instance(replace(found, config=_sorted(patched))),
        None,
        (run,),
        f"the configure hook of {current.revision} saw the patch and succeeded, so it is "
        "committed (configstate.go Configure)",
        config_reads=reads,
    )


def _committed(pristine: object, path: list[str], leaf: object) -> object:
    """The value at a key after a patch setting `leaf` at `path` under it: a map is patched
    key by key, anything else (or nothing) is replaced by the nested change
    (config/transaction.go commitChange; the leaf replaces what was there whole)."""
    if not path:
        return leaf
    if isinstance(pristine, dict):
        patched = dict(pristine)
        patched[path[0]] = _committed(pristine.get(path[0]), path[1:], leaf)
        return patched
    return {path[0]: _committed(None, path[1:], leaf)}


def _patch(config: dict[str, str], key: str, value_json: str) -> None:
    """Apply `snap set NAME KEY=VALUE` (KEY dotted: a.b.c) to the top-level JSON texts."""
    top, *path = key.split(".")
    pristine = json.loads(config[top]) if top in config else None
    value = _committed(pristine, path, json.loads(value_json))
    config[top] = json.dumps(value, sort_keys=True)


def _walk(config: Config | None, key: str) -> tuple[str | None, str | None]:
    """What getFromConfig finds at a dotted KEY (config/transaction.go): the part of it (a.b
    of a.b.c) set to something that is not a map, if any; else the JSON text at KEY, None
    when it is not set."""
    top, *path = key.split(".")
    text_at = dict(config or ()).get(top)
    if text_at is None or not path:
        return None, text_at
    value: object = json.loads(text_at)
    walked = [top]
    for part in path:
        if value is None:  # a null decodes as an empty map: the key is not set
            return None, None
        if not isinstance(value, dict):
            return ".".join(walked), None
        if part not in value:
            return None, None
        value = value[part]
        walked.append(part)
    return None, json.dumps(value, sort_keys=True)


def get_config(state: SnapdState, instance_name: str, key: str) -> Outcome:
    """`snap get NAME KEY`: prints the value (a string as it is; KEY may be dotted)."""
    found = state.instance(instance_name)
    if found is None:
        raise ModelGap("snap get of a snap that is not installed: text not modelled")
    blocked, value = _walk(found.config, key)
    if blocked is not None:
        return Outcome(
            state,
            ExpectedError(
                "not-a-map", NOT_A_MAP.format(text.go_quote(instance_name), text.go_quote(blocked))
            ),
            (),
            f"{key} goes through {blocked}, which is not a map (config/transaction.go "
            "getFromConfig)",
        )
    if value is not None and isinstance(json.loads(value), dict):
        raise ModelGap(f"snap get of the map {key}: the CLI prints a table the model lacks")
    if value is None:
        return Outcome(
            state,
            ExpectedError(
                "no-option", NO_OPTION.format(text.go_quote(instance_name), text.go_quote(key))
            ),
            (),
            f"{key} is not set (daemon/api_snap_conf.go)",
        )
    return Outcome(
        state,
        None,
        (),
        f"{key} is {value}",
        notices=(printed(value),),
    )
