#!/bin/sh
# snapconform fixture app: the one app, `mark`, of every fixture snap (run as NAME.mark).
#
#   mark MARKER   create an empty file named MARKER in $SNAP_DATA and in $SNAP_COMMON, and
#                 print nothing. A test then looks for the two files on the host to see
#                 which revision's data a later refresh, revert or remove kept or copied.
#                 MARKER is letters, digits, '.', '_' and '-' only, and not '.' or '..',
#                 so it can only ever name a file directly inside those two directories.
#   mark --env    print the SNAP and SNAP_* environment variables, one per line, sorted
#                 bytewise, for a test to check what snapd tells an app.
#   mark --user MARKER
#                 create MARKER in $SNAP_USER_DATA and in $SNAP_USER_COMMON (the running
#                 user's ~/snap/NAME/REV and ~/snap/NAME/common), for the user-data suites.
#   mark --env-all
#                 like --env, plus HOME, USER and every XDG_* variable: what a user's app sees.
#
# POSIX sh and busybox applets only: fixture snaps have no base and run on a stand-in
# `core` that holds nothing but a static busybox. Nothing here is filled in at build time.

usage() {
    echo "usage: mark MARKER | mark --user MARKER | mark --env | mark --env-all  (MARKER: letters, digits, '.', '_', '-')" >&2
    exit 2
}

data=$SNAP_DATA
common=$SNAP_COMMON
if [ "$#" -eq 2 ] && [ "$1" = --user ]; then
    data=$SNAP_USER_DATA
    common=$SNAP_USER_COMMON
    shift
fi

[ "$#" -eq 1 ] || usage

case $1 in
--env)
    env | grep -e '^SNAP=' -e '^SNAP_' | LC_ALL=C sort
    exit 0
    ;;
--env-all)
    env | grep -e '^SNAP=' -e '^SNAP_' -e '^HOME=' -e '^USER=' -e '^XDG_' | LC_ALL=C sort
    exit 0
    ;;
# Spelled out rather than A-Z/a-z ranges, whose meaning depends on the locale.
'' | . | .. | *[!ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-]*)
    usage
    ;;
esac

# Refuse rather than write to "/MARKER" when snapd did not say where the data lives.
if [ -z "$data" ] || [ -z "$common" ]; then
    echo "mark: SNAP_DATA and SNAP_COMMON (with --user: SNAP_USER_DATA and SNAP_USER_COMMON) must be set" >&2
    exit 1
fi

: >"$data/$1" && : >"$common/$1"
