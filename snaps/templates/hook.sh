#!/bin/sh
# snapconform fixture hook: the same script serves every hook of every fixture snap.
#
# It does three things, in this order:
#   1. appends ONE line to the hook log, so a test can tell which hooks ran, in which
#      revision, and what the hook was told;
#   2. when the fixture gives it a marker, creates an empty file of that name in $SNAP_DATA
#      and in $SNAP_COMMON (a "migration" a test can follow through copies and rollbacks);
#   3. succeeds, or (when the fixture says so) prints its failure message on stderr and
#      exits 1, which is how snapd learns that a hook failed.
#
# The hook log: /var/tmp/snapconform/hooks.log, on the HOST.
#   - It lies outside the snap's data dirs ($SNAP_DATA, $SNAP_COMMON, $SNAP_USER_DATA),
#     which snapd copies on refresh, throws away on rollback and deletes on remove: the
#     record of what ran must survive all three.
#   - Hooks run as root under snap-confine, inside the snap's mount namespace. There
#     snap-confine bind-mounts the host's /var/tmp (whereas /tmp is private to each snap),
#     so every snap appends to the one host file.
#   - ASSUMPTION, to verify on real snapd: no AppArmor (the nspawn hosts have none), so
#     only seccomp and the mount namespace apply and root may write there. Under AppArmor
#     the strict template may deny the write; the hook then fails loudly (below) rather
#     than lose a record.
#   - SNAPCONFORM_HOOK_LOG overrides the path. Only offline tests set it: snapd's own
#     environment never carries it, so on a real host the default always applies.
#
# Log line: five tab-separated fields, newline-terminated:
#   SNAP_INSTANCE_NAME  HOOK  SNAP_REVISION  SNAP_DATA  SNAP_VERSION
# SNAP_DATA and SNAP_VERSION are the hook's own view: a pre-refresh hook runs in the old
# revision and is not told the new one, and the log shows exactly that.
#
# POSIX sh and busybox applets only: fixture snaps have no base and run on a stand-in
# `core` that holds nothing but a static busybox.
#
# The settings below are filled in, shell-quoted, when a fixture is built; the
# failure message itself is never put in this script (see the end).
#
# config_keys: space-separated configuration keys the hook reads with `snapctl get`. Each
# value read is appended to /var/tmp/snapconform/config.log (SNAPCONFORM_CONFIG_LOG in
# offline tests) as five tab-separated fields:
#   SNAP_INSTANCE_NAME  HOOK  SNAP_REVISION  KEY  VALUE
# and a value starting with "bad" makes the hook print `refusing KEY=VALUE` on stderr and
# exit 1: how a configure hook rejects a value.

hook=@HOOK_NAME@
fails=@HOOK_FAILS@
marker=@HOOK_MARKER@
config_keys=@HOOK_CONFIG_KEYS@

log=${SNAPCONFORM_HOOK_LOG:-/var/tmp/snapconform/hooks.log}
if ! mkdir -p "${log%/*}" ||
    ! printf '%s\t%s\t%s\t%s\t%s\n' \
        "$SNAP_INSTANCE_NAME" "$hook" "$SNAP_REVISION" "$SNAP_DATA" "$SNAP_VERSION" >>"$log"
then
    echo "snapconform hook $hook: cannot append to $log" >&2
    exit 1
fi

if [ -n "$marker" ]; then
    : >"$SNAP_DATA/$marker" && : >"$SNAP_COMMON/$marker" || exit 1
fi

if [ -n "$config_keys" ]; then
    config_log=${SNAPCONFORM_CONFIG_LOG:-/var/tmp/snapconform/config.log}
    refused=
    for key in $config_keys; do
        value=$(snapctl get "$key") || exit 1
        printf '%s\t%s\t%s\t%s\t%s\n' \
            "$SNAP_INSTANCE_NAME" "$hook" "$SNAP_REVISION" "$key" "$value" >>"$config_log" || exit 1
        case $value in bad*) refused="${refused:-$key=$value}" ;; esac
    done
    if [ -n "$refused" ]; then
        echo "refusing $refused" >&2
        exit 1
    fi
fi

if [ "$fails" = yes ]; then
    # The message is a data file in the snap, printed byte for byte by cat: quotes, $(...),
    # backticks and newlines in it are never seen by a shell.
    cat "$SNAP/snapconform/hooks/$hook.stderr" >&2
    exit 1
fi
exit 0
