"""snapd's words: the exact texts the model predicts, and the few Go formatting rules behind them.

Every text here is a fact read from canonical/snapd at tag 2.57.6 (the file is named next to it);
the model only assembles them. Later releases (2.68, 2.71, 2.77) were checked for the texts that
the model uses with their version rules.
"""

from __future__ import annotations

import json
import re
from typing import Any

from snapconform.model.gotext import go_quote

__all__ = [
    "HOOK_SUMMARIES",
    "change_error",
    "cli_config_text",
    "go_quote",
    "hook_error",
    "output_err",
]

# Task summaries of the hook tasks; the %q is the instance name (hooksup.Snap is
# snapsup.InstanceName()). overlord/hookstate/hooks.go (install, pre-/post-refresh, remove),
# overlord/configstate/configstate.go (configure, "if present" because the patch is empty),
# overlord/healthstate/healthstate.go (check-health, no "if present").
HOOK_SUMMARIES: dict[str, str] = {
    "install": "Run install hook of {} snap if present",
    "configure": "Run configure hook of {} snap if present",
    "pre-refresh": "Run pre-refresh hook of {} snap if present",
    "post-refresh": "Run post-refresh hook of {} snap if present",
    "remove": "Run remove hook of {} snap if present",
    "check-health": "Run health check of {} snap",
}
# `snap set system K=V` patches "core" (configstate.RemapSnapFromRequest); a non-empty patch
# makes the hook mandatory, so no "if present" (configstate.go Configure).
SYSTEM_CONFIGURE_SUMMARY = 'Run configure hook of "core" snap'

# Errors from the API calls themselves (snapd answers 400 before any change exists).
# daemon/api_sideload_n_try.go wraps InstallPath's errors; daemon/api_snaps.go
# (snapInstruction.errToResponse) wraps refresh/revert/remove errors as `cannot %s %q: %v`.
INSTALL_FILE_PREFIX = "cannot install snap file: "
READ_FILE_PREFIX = "cannot read snap file: "  # daemon readSideInfo
PARSE_YAML_PREFIX = "cannot parse snap.yaml: "  # snap/info_snap_yaml.go infoFromSnapYaml
EPOCH_REFUSED = (  # overlord/snapstate/check_snap.go checkEpochs
    "cannot refresh {name} to {desc} with epoch {new}, because it can't read the current epoch "
    "of {current}"
)
PARALLEL_DISABLED = (  # overlord/snapstate/snapstate.go validateFeatureFlags
    "experimental feature disabled - test it by setting 'experimental.parallel-instances' to true"
)
# From 2.74 the install preconditions wrap it (snapstate.go, first tagged in 2.74; observed:
# 2.68 plain, 2.77 wrapped).
FEATURE_FLAG_WRAP_SINCE = (2, 74)
FEATURE_FLAG_WRAP = "feature flag validation failed for snap {}: "


def parallel_disabled(snapd_version: tuple[int, int], instance: str) -> str:
    """The refusal of an instance key while experimental.parallel-instances is off."""
    if snapd_version >= FEATURE_FLAG_WRAP_SINCE:
        return FEATURE_FLAG_WRAP.format(go_quote(instance)) + PARALLEL_DISABLED
    return PARALLEL_DISABLED


RESERVED_SYSTEM = "cannot install reserved snap name 'system'"  # snapstate.go doInstall
INSTANCE_MISMATCH = "instance name {} does not match snap name {}"  # api_sideload_n_try.go
INVALID_SNAP_NAME = "invalid snap name: {}"  # snap/naming/validate.go ValidateSnap
INVALID_INSTANCE_KEY = "invalid instance key: {}"  # snap/naming/validate.go ValidateInstance
NOT_INSTALLED = "snap {} is not installed"  # snap/errors.go NotInstalledError
REVISION_NOT_INSTALLED = "revision {} of snap {} is not installed"  # same
LOCAL_UNKNOWN = (  # cmd/snap/error.go, ErrorKindSnapLocal (store.ErrLocalSnap)
    "local snap {} is unknown to the store, use --amend to proceed anyway"
)
ACTIVE_REVISION = "cannot remove active revision {} of snap {}"  # snapstate.go removeTasks
REVERT_FIRST = " (revert first?)"
NO_REVISION_TO_REVERT = "no revision to revert to"  # snapstate.go Revert
ALREADY_ON_REVISION = "already on requested revision"  # snapstate.go RevertToRevision
INACTIVE_REVERT = "cannot revert inactive snaps"
REVERT_NOT_FOUND = "cannot find revision {} for snap {}"
# overlord/configstate/configcore/refresh.go validateRefreshSchedule
RETAIN_RANGE = "retain must be a number between 2 and 20, not {}"
# overlord/configstate/configcore/corecfg.go validateBoolFlag
BOOL_FLAG = "{} can only be set to 'true' or 'false'"
# snap/info.go ReadCurrentInfo, reached by `snap run` (cmd/snap/cmd_run.go getSnapInfo); the
# readlink part is Go's os.PathError text. Debian mounts snaps under /snap.
RUN_NOT_INSTALLED = (
    "cannot find current revision for snap {name}: readlink /snap/{name}/current: "
    "no such file or directory"
)


# Go's unicode.IsSpace, which bytes.TrimSpace uses (Python's str.strip also trims \x1c-\x1f).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
_GO_SPACE += "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def output_err(output: str, exit_status: int = 1) -> str:
    """What a failing hook's error says: osutil/outputerr.go OutputErr.

    The output is trimmed; none left gives the exec error (`exit status N`); a multi-line output
    is framed by `-----` lines.
    """
    trimmed = output.strip(_GO_SPACE)
    if not trimmed:
        return f"exit status {exit_status}"
    if "\n" in trimmed:
        return f"\n-----\n{trimmed}\n-----"
    return trimmed


# What snapd keeps of a hook's combined stdout and stderr: osutil/exec.go RunAndWait writes it
# into strutil.NewLimitedBuffer(100, 10*1024) (the same in 2.57.6, 2.68.3 and 2.77).
HOOK_OUTPUT_MAX_LINES = 100
HOOK_OUTPUT_MAX_BYTES = 10 * 1024


def hook_output_tail(
    output: str, max_lines: int = HOOK_OUTPUT_MAX_LINES, max_bytes: int = HOOK_OUTPUT_MAX_BYTES
) -> str:
    """The tail of a hook's output that snapd keeps (strutil/limbuffer.go, strutil.go
    TruncateOutput): the last `max_bytes` bytes, cut after the `max_lines`-th newline counted
    from the end (a trailing newline counts: 100 newline-ended lines keep 99)."""
    data = output.encode("utf-8", "surrogateescape")[-max_bytes:]
    lines = max_lines
    for index in range(len(data) - 1, -1, -1):
        if data[index] == 0x0A:
            lines -= 1
            if lines == 0:
                data = data[index + 1 :]
                break
    return data.decode("utf-8", "replace")


def hook_error(hook: str, output: str) -> str:
    """A failed hook task's error: overlord/hookstate/hookmgr.go runHook, on the tail of the
    output snapd kept."""
    return f"run hook {go_quote(hook)}: {output_err(hook_output_tail(output))}"


# How every change that ended in error begins (overlord/state/change.go changeError).
CHANGE_ERROR_PREFIX = "cannot perform the following tasks:"


def change_error(summary: str, error: str) -> str:
    """A change that ended in error, one failed task: overlord/state/change.go changeError."""
    return change_error_lines([(summary, error)])


def hook_change_error(hook: str, instance: str, output: str) -> str:
    """The whole CLI error for a change whose only failed task is ``hook`` of ``instance``."""
    summary = HOOK_SUMMARIES[hook].format(go_quote(instance))
    return change_error(summary, hook_error(hook, output))


def system_config_error(message: str) -> str:
    """`snap set system` refused by configcore: the hijacked "configure" hook of "core" fails."""
    return change_error(SYSTEM_CONFIGURE_SUMMARY, f"run hook {go_quote('configure')}: {message}")


def _go_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON to Go")


def cli_config_text(value: str) -> str | None:
    """The text configcore sees for `snap set system KEY=VALUE`; None when the key is unset.

    cmd/snap/cmd_set.go decodes VALUE as JSON with numbers kept as their literal text
    (jsonutil.DecodeWithNumber) and falls back to the raw string; configcore then formats the
    stored value with %v (configcore/corecfg.go coreCfg), so "true" and true read alike and
    null reads as unset.
    """
    try:
        decoded = json.loads(
            value, parse_int=str, parse_float=str, parse_constant=_go_json_constant
        )
    except ValueError:
        return value
    if decoded is None:
        return None
    if isinstance(decoded, bool):
        return "true" if decoded else "false"
    if isinstance(decoded, str):
        return decoded
    raise ValueError(f"configuration value {value!r} is a JSON list or object: outside the model")


_UINT8 = re.compile(r"[0-9]+")


def parse_go_uint8(text: str) -> int | None:
    """strconv.ParseUint(text, 10, 8): plain ASCII digits up to 255, else None."""
    if not _UINT8.fullmatch(text):
        return None
    number = int(text)
    return number if number <= 255 else None


# -- the store: what `snap install NAME`, `snap refresh`, `snap switch` print ------------------
# cmd/snap/error.go errorToCmdMessage (2.57.6, 2.68.3; cmd/snapd/cli/error.go in 2.77, same
# texts). The "(see 'snap info N')" hints are part of the message.
SNAP_NOT_FOUND = "snap {} not found"  # ErrorKindSnapNotFound (store name-not-found)
NOT_AVAILABLE_AS_SPECIFIED = "snap {q} not available as specified (see 'snap info {name}')"
NOT_AVAILABLE_ON_CHANNEL = "snap {q} not available on channel {channel} (see 'snap info {name}')"
REVISION_NOT_AVAILABLE = "snap {q} revision {revision} not available (see 'snap info {name}')"
# ErrorKindSnapNoUpdateAvailable and ErrorKindSnapAlreadyInstalled are printed, exit 0.
NO_UPDATES = "snap {} has no updates available"
ALREADY_INSTALLED = "snap {} is already installed, see 'snap help refresh'"
# cmd/snap/cmd_snap_op.go refreshMany: nothing refreshed (stderr, exit 0).
ALL_UP_TO_DATE = "All snaps up to date."
# cmd/snap/cmd_snap_op.go showDone, after an install or refresh, for each snap shown whose
# tracking channel and current revision's channel differ in risk (isSameRisk).
CLOSED_CHANNEL_NOTICE = (
    "Channel {tracking} for {name} is closed; temporarily forwarding to {channel}."
)
# cmd/snap/cmd_snap_op.go showDone, op "switch" with only --channel (TrackingChannel, %q).
SWITCHED = "{} switched to the {} channel"
# snapstate.go InstallWithDeviceContext / target.go validateAndPrune.
INVALID_INSTANCE_NAME = "invalid instance name: "
# The check-rerefresh task's summary (snapstate.go finalizeUpdate; the wording changed in 2.62,
# commit 293c75da0a, first tagged 2.62).
RE_REFRESH_SUMMARY_SINCE = (2, 62)
_NOT_ON_CHANNEL_LISTED = (
    "snap {q} is not available on {channel} but is available to install on the following "
    "channels:\n"
)
_PRE_RELEASE_WARNING = (
    "Please be mindful pre-release channels may include features not completely tested or "
    "implemented."
)
_MORE_INFO = "Get more information with 'snap info {}'."


def re_refresh_summary(snapd_version: tuple[int, int], instances: list[str]) -> str:
    """The check-rerefresh task's summary for the snaps a refresh moved (sorted)."""
    names = sorted(instances)
    quoted = ", ".join(go_quote(name) for name in names)  # strutil.Quoted
    if snapd_version < RE_REFRESH_SUMMARY_SINCE:
        return f"Handling re-refresh of {quoted} as needed"
    if len(names) == 1:
        return f"Monitoring snap {quoted} to determine whether extra refresh steps are required"
    return f"Monitoring snaps {quoted} to determine whether extra refresh steps are required"


def short_channel(channel: str) -> str:
    """channel.Parse(...).Name: the default track "latest" is dropped."""
    return channel.removeprefix("latest/")


def channel_option(channel: str) -> str:
    """cmd/snap/error.go channelOption for a channel without branch."""
    track, _, risk = short_channel(channel).rpartition("/")
    if not track:
        return f"--{risk}"
    if risk == "stable":
        return f"--channel={track}"
    return f"--channel={track}/{risk}"


def not_available_listing(
    instance: str, action: str, requested: str, open_channels: list[str]
) -> str:
    """snapRevisionNotAvailableMessage's "architecture:track" case: nothing in the requested
    channel (or anything it falls back to) but riskier channels of the same track are open.

    The other cases (other tracks, other architectures, branches) are outside the model. The
    table is a Go tabwriter (minwidth 11, padding 2) indented by two spaces; compare whitespace-
    normalised as every CLI text.
    """
    req = short_channel(requested)
    req_track = req.rpartition("/")[0]
    hits = [c for c in open_channels if short_channel(c).rpartition("/")[0] == req_track]
    if not hits or len(hits) != len(open_channels):
        raise ValueError(f"outside the model: open channels {open_channels} for {requested}")
    width = max(len("candidate") + 2, *(len(short_channel(c)) + 2 for c in hits))
    rows = [
        f"  {short_channel(c).ljust(width)}snap {action} {channel_option(c)} {instance}"
        for c in hits
    ]
    message = _NOT_ON_CHANNEL_LISTED.format(q=go_quote(instance), channel=req)
    message += "\n".join(rows) + "\n"
    if req.rpartition("/")[2] == "stable":
        message += "\n" + _PRE_RELEASE_WARNING
    return message + "\n" + _MORE_INFO.format(instance)


def change_error_lines(failures: list[tuple[str, str]]) -> str:
    """A change that ended in error with these failed tasks (summary, error), in task order:
    overlord/state/change.go changeError."""
    lines = "\n".join(f"- {summary} ({error})" for summary, error in failures)
    return f"{CHANGE_ERROR_PREFIX}\n{lines}"
