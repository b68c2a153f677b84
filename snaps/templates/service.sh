#!/bin/sh
# snapconform fixture service: one app with `daemon: simple` or `daemon: oneshot` in snap.yaml.
#
#   simple   stays running (sleeps) until systemd stops it: its unit is active while it runs.
#   oneshot  exits at once: 0 (`systemctl start` returns when it has exited; snapd then
#            reports it enabled but not active), or, when built to fail, 1 after a line on
#            stderr, so that `systemctl start` fails and snapd undoes the change that started
#            it (an install, a refresh, a revert, `snap enable`).
#
# It writes nothing in $SNAP_DATA or $SNAP_COMMON: the data the suites compare stays the
# hooks' and the `mark` app's. POSIX sh and busybox applets only (the stand-in core).
service=@SERVICE_NAME@
daemon=@SERVICE_DAEMON@
fails=@SERVICE_FAILS@

if [ "$fails" = yes ]; then
    echo "snapconform service $service: planned failure" >&2
    exit 1
fi
if [ "$daemon" = oneshot ]; then
    exit 0
fi
while :; do
    sleep 3600
done
