"""Runs ON THE HOST (python3, standard library only) and prints one JSON observation.

The harness copies this file to the host once and starts it there as a long-lived server
(`--serve DIR`): each observation is one request line written into DIR's FIFO, answered on a
FIFO the request names, so a step pays no python3 start-up and no imports. The same program also
answers once from its command line (the fallback, and what a person can run by hand). One
round trip reads everything: snapd's view over its REST API (/run/snapd.socket: one /v2/snaps
listing, the changes after the last one seen), each revision's meta/snap.yaml, the data
directories, and the fixture hook log. It must not import snapconform: the host has only a stock
python3.

Usage: python3 observe.py --hook-log PATH [--truncate-hook-log] [--since-change N]
       [--store-log PATH --store-log-from OFFSET] [--host-snaps] INSTANCE...
       python3 observe.py --serve DIR   (requests: {"argv": [...], "reply": FIFO} a line)
"""

import argparse
import errno
import fcntl
import http.client
import json
import os
import select
import socket
import sys
import time
import traceback

SNAPD_SOCKET = "/run/snapd.socket"


SNAPD_TIMEOUT = 30.0  # seconds snapd gets to answer one request (--snapd-timeout)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=SNAPD_TIMEOUT)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(SNAPD_TIMEOUT)
        sock.connect(self.unix_path)
        self.sock = sock


def rest_get(path: str) -> tuple[int, dict]:
    conn = UnixHTTPConnection(SNAPD_SOCKET)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def list_dir(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return None


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


# snapd's /v2/snaps?select=all listing, read once per observation (see snap_entries).
_snap_listing: list[dict] | None = None


def read_snap_listing() -> list[dict]:
    """Every revision of every installed snap, grouped per snap in sequence order (daemon
    allLocalSnapInfos): one request serves all instances of an observation."""
    status, body = rest_get("/v2/snaps?select=all")
    if status != 200:
        raise RuntimeError(f"GET /v2/snaps answered {status}: {body.get('result')}")
    return list(body.get("result") or [])


def snap_entries(instance: str) -> tuple[int, dict]:
    """What `GET /v2/snaps?select=all&snaps=INSTANCE` answers, from the observation's listing
    (or that request itself outside an observation)."""
    if _snap_listing is None:
        return rest_get(f"/v2/snaps?select=all&snaps={instance}")
    entries = [entry for entry in _snap_listing if entry.get("name") == instance]
    if not entries:
        return 404, {"result": {"kind": "snap-not-found"}}
    return 200, {"result": entries}


def observe_instance(instance: str) -> dict:
    status, body = snap_entries(instance)
    entries = body.get("result") if status == 200 else None
    revisions = []
    for entry in entries or []:
        revision = str(entry.get("revision"))
        revisions.append(
            {
                "revision": revision,
                "status": entry.get("status"),
                "version": entry.get("version"),
                "name": entry.get("name"),
                "tracking_channel": entry.get("tracking-channel"),
                "snap_yaml": read_text(f"/snap/{instance}/{revision}/meta/snap.yaml"),
                "data": list_dir(f"/var/snap/{instance}/{revision}"),
            }
        )
    data_root = list_dir(f"/var/snap/{instance}")
    return {
        "name": instance,
        "http_status": status,
        "error_kind": None if status == 200 else (body.get("result") or {}).get("kind"),
        "revisions": revisions,
        "common": list_dir(f"/var/snap/{instance}/common"),
        "data_dirs": data_root,
        "services": observe_services(instance, entries or []),
        "user_data": observe_user_data(instance),
        "config": observe_config(instance) if status == 200 else None,
        "confinement": observe_confinement(entries or []),
        "tried": observe_try(instance, entries or []),
    }


def observe_try(instance: str, entries: list) -> dict | None:
    """`snap try`: the snap's `trymode`, the active revision's `mounted-from` when it is a
    directory, and /snap/INSTANCE/current/try-note; None when no revision is active."""
    active = [entry for entry in entries if entry.get("status") == "active"]
    if not active:
        return None
    mounted = active[0].get("mounted-from") or ""
    return {
        "trymode": bool(active[0].get("trymode")),
        "mounted_from": None if not mounted or mounted.endswith(".snap") else mounted,
        "note": read_text(f"/snap/{instance}/current/try-note"),
    }


def observe_confinement(entries: list) -> dict | None:
    """The active revision's `confinement` and the snap's `devmode` / `jailmode` flags as
    /v2/snaps lists them (the flags are omitted when false); None when none is active."""
    active = [entry for entry in entries if entry.get("status") == "active"]
    if not active:
        return None
    return {
        "confinement": active[0].get("confinement"),
        "devmode": bool(active[0].get("devmode")),
        "jailmode": bool(active[0].get("jailmode")),
    }


def observe_services(instance: str, entries: list) -> dict:
    """The snap's enabled flag, its current revision and its services' enabled/active flags.

    The listing says neither which revision is current of a disabled snap (every revision is
    `installed`) nor a service's state, so `GET /v2/snaps/INSTANCE` is asked, only when the
    snap has services or no active revision (its `apps` carry `enabled`/`active`, omitted when
    false)."""
    if not entries:
        return {"enabled": None, "current": None, "apps": []}
    active = [entry for entry in entries if entry.get("status") == "active"]
    has_services = any(app.get("daemon") for entry in entries for app in entry.get("apps") or [])
    if active and not has_services:
        return {"enabled": True, "current": str(active[0].get("revision")), "apps": []}
    status, body = rest_get(f"/v2/snaps/{instance}")
    snap = body.get("result") if status == 200 else None
    if not isinstance(snap, dict):
        return {"enabled": None, "current": None, "apps": []}
    apps = [
        {
            "name": app.get("name"),
            "daemon": app.get("daemon"),
            "enabled": bool(app.get("enabled")),
            "active": bool(app.get("active")),
        }
        for app in snap.get("apps") or []
        if app.get("daemon")
    ]
    return {
        "enabled": snap.get("status") == "active",
        "current": str(snap.get("revision")),
        "apps": sorted(apps, key=lambda app: str(app["name"])),
    }


def observe_connections(instances: list) -> list:
    """Established interface connections with a plug or slot on one of `instances`
    (GET /v2/connections), each [plug snap, plug, slot snap, slot, manual]."""
    if not instances:
        return []
    status, body = rest_get("/v2/connections")
    result = body.get("result") if status == 200 else None
    connections = []
    for connection in (result or {}).get("established") or []:
        plug, slot = connection.get("plug") or {}, connection.get("slot") or {}
        if plug.get("snap") in instances or slot.get("snap") in instances:
            connections.append(
                [
                    plug.get("snap"),
                    plug.get("plug"),
                    slot.get("snap"),
                    slot.get("slot"),
                    bool(connection.get("manual")),
                ]
            )
    return sorted(connections)


# -- users' data and configuration (helper area "userdata-config") -----------------------------
# fixtures.CONFIG_LOG_PATH: a fixed root-only path on the host under test.
CONFIG_LOG = "/var/tmp/snapconform/config.log"  # noqa: S108


def home_dirs() -> list[tuple[str, str]]:
    """(user, home) for root and every account with a uid from 1000 (passwd order)."""
    homes = []
    for line in (read_text("/etc/passwd") or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[2].isdigit():
            uid = int(fields[2])
            if uid == 0 or 1000 <= uid < 60000:
                homes.append((fields[0], fields[5]))
    return homes


def settle_services(instance: str, seconds: float = 5.0) -> None:
    """Wait until each running service of INSTANCE is past `snap run` (which makes root's
    ~/snap/INSTANCE/REV and moves its `current` link before it execs snap-confine): systemd
    reports a simple service started as soon as it forked, so without this the link would
    race the observation."""
    import glob
    import subprocess

    units = glob.glob(f"/etc/systemd/system/snap.{instance}.*.service")
    deadline = time.monotonic() + seconds
    for unit in units:
        shown = subprocess.run(
            ["systemctl", "show", "-p", "MainPID", "--value", os.path.basename(unit)],
            capture_output=True,
            text=True,
            check=False,
        )
        pid = shown.stdout.strip()
        if not pid.isdigit() or pid == "0":
            continue
        while time.monotonic() < deadline:
            try:
                exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            except OSError:
                break  # gone
            if exe != "snap":
                break
            time.sleep(0.02)


def observe_user_data(instance: str) -> dict:
    """Per user with a ~/snap/INSTANCE: its revision dirs with their entries, common, the
    current link's target, trash (REV.old) and anything else."""
    settle_services(instance)
    users = {}
    for user, home in home_dirs():
        base = os.path.join(home, "snap", instance)
        entries = list_dir(base)
        if entries is None:
            continue
        seen: dict = {"revisions": {}, "common": None, "current": None, "trash": [], "other": []}
        for entry in entries:
            path = os.path.join(base, entry)
            if os.path.islink(path):
                if entry == "current":
                    seen["current"] = os.readlink(path)
                else:
                    seen["other"].append(entry)
            elif entry == "common":
                seen["common"] = list_dir(path)
            elif entry.endswith(".old"):
                seen["trash"].append(entry)
            elif os.path.isdir(path):
                seen["revisions"][entry] = list_dir(path)
            else:
                seen["other"].append(entry)
        users[user] = seen
    return users


def observe_config(instance: str) -> dict | None:
    """The snap's configuration as REST /v2/snaps/NAME/conf returns it (None: not there)."""
    status, body = rest_get(f"/v2/snaps/{instance}/conf")
    result = body.get("result")
    return result if status == 200 and isinstance(result, dict) else None


def observe_config_log(truncate: bool) -> list[str]:
    """Lines the fixture hooks logged of the values they read with `snapctl get`."""
    lines = (read_text(CONFIG_LOG) or "").splitlines()
    if truncate and os.path.exists(CONFIG_LOG):
        with open(CONFIG_LOG, "w"):
            pass
    return lines


def change_record(change: dict) -> dict:
    return {
        "id": int(change["id"]),
        "kind": change.get("kind"),
        "summary": change.get("summary"),
        "status": change.get("status"),
        "err": change.get("err"),
        "tasks": [
            {
                "kind": task.get("kind"),
                "summary": task.get("summary"),
                "status": task.get("status"),
                "log": task.get("log") or [],
            }
            for task in change.get("tasks") or []
        ],
    }


def observe_changes(since: int | None) -> tuple[list[dict], int]:
    """Changes newer than `since` (none when since is None) and the newest change's id.

    With a `since` above 0 the changes after it are asked for one by one (GET
    /v2/changes/ID until snapd answers 404): snapd numbers changes 1, 2, 3, ... (state.go
    NewChange), so this reads only the step's own changes, where listing them all would grow
    with every step of a run. Without one (a run's first observation) one listing finds the
    newest id."""
    if since is not None and since > 0:
        changes = []
        while True:
            status, body = rest_get(f"/v2/changes/{since + len(changes) + 1}")
            if status != 200:
                break
            changes.append(change_record(body.get("result") or {}))
        return changes, since + len(changes)
    status, body = rest_get("/v2/changes?select=all")
    if status != 200:
        return [], 0
    everything = body.get("result") or []
    last = max((int(change.get("id", 0)) for change in everything), default=0)
    if since is None:
        return [], last
    changes = [change_record(change) for change in everything if int(change.get("id", 0)) > since]
    return sorted(changes, key=lambda change: change["id"]), last


def read_store_log(path: str | None, offset: int) -> tuple[list[dict], int]:
    """The served store's request lines (one JSON object each) written after byte `offset`,
    and the offset after the last whole line: a line still being written waits for next time."""
    if not path:
        return [], offset
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return [], 0
    whole = chunk[: chunk.rfind(b"\n") + 1]
    requests = []
    for line in whole.splitlines():
        try:
            requests.append(json.loads(line))
        except ValueError:
            requests.append({"unparsed": line.decode("utf-8", "replace")})
    return requests, offset + len(whole)


def observe_host_snaps() -> list[dict]:
    """Every snap installed on the host (the run's own and what was there before it): per
    snap its type and base, and per revision what a model needs to start from it."""
    snaps: dict[str, dict] = {}
    for entry in _snap_listing if _snap_listing is not None else read_snap_listing():
        name = str(entry.get("name"))
        revision = str(entry.get("revision"))
        snap = snaps.setdefault(
            name,
            {"name": name, "type": entry.get("type"), "base": entry.get("base"), "revisions": []},
        )
        if entry.get("status") == "active":
            snap["type"], snap["base"] = entry.get("type"), entry.get("base")
            snap["apps"] = sorted(str(app.get("name")) for app in entry.get("apps") or [])
        snap["revisions"].append(
            {
                "revision": revision,
                "status": entry.get("status"),
                "version": entry.get("version"),
                "type": entry.get("type"),
                "base": entry.get("base"),
                "tracking_channel": entry.get("tracking-channel"),
                "channel": entry.get("channel"),
                "snap_yaml": read_text(f"/snap/{name}/{revision}/meta/snap.yaml"),
                "hooks": list_dir(f"/snap/{name}/{revision}/meta/hooks"),
                "data": list_dir(f"/var/snap/{name}/{revision}"),
            }
        )
        snap["common"] = list_dir(f"/var/snap/{name}/common")
    return [snaps[name] for name in sorted(snaps)]


def observe_device_model() -> dict | None:
    """The model assertion's headers that decide what may be removed (None: no model yet)."""
    status, body = rest_get("/v2/model?json=true&headers-only=true")
    if status != 200:
        return None
    headers = (body.get("result") or {}).get("headers") or {}
    return {key: headers.get(key) for key in ("classic", "base", "gadget", "kernel", "model")}


def observe_confinement_level() -> str | None:
    """/v2/system-info's `confinement`: "partial" when snapd forces devmode (no full AppArmor;
    daemon/api_general.go), "strict" otherwise; None when snapd does not answer."""
    status, body = rest_get("/v2/system-info")
    if status != 200:
        return None
    return (body.get("result") or {}).get("confinement")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="observe.py")
    parser.add_argument("--hook-log", required=True)
    parser.add_argument("--truncate-hook-log", action="store_true")
    parser.add_argument("--since-change", type=int, default=None)
    parser.add_argument("--store-log", default=None)
    parser.add_argument("--store-log-from", type=int, default=0)
    parser.add_argument("--host-snaps", action="store_true")
    parser.add_argument("--snapd-socket", default="/run/snapd.socket")
    parser.add_argument("--snapd-timeout", type=float, default=30.0)
    parser.add_argument("instances", nargs="*")
    return parser.parse_args(argv)


def observe(args: argparse.Namespace) -> dict:
    """One observation: the top-level result (add a key of your own for a new area)."""
    global _snap_listing, SNAPD_SOCKET, SNAPD_TIMEOUT
    SNAPD_SOCKET, SNAPD_TIMEOUT = args.snapd_socket, args.snapd_timeout
    hook_log = read_text(args.hook_log) or ""
    if args.truncate_hook_log and os.path.exists(args.hook_log):
        with open(args.hook_log, "w"):
            pass
    changes, last_change = observe_changes(args.since_change)
    store_requests, store_log_offset = read_store_log(args.store_log, args.store_log_from)
    _snap_listing = read_snap_listing()
    try:
        result = {
            "instances": [observe_instance(name) for name in args.instances],
            "hook_log": hook_log.splitlines(),
            "config_log": observe_config_log(args.truncate_hook_log),
            "changes": changes,
            "last_change": last_change,
            "store_requests": store_requests,
            "store_log_offset": store_log_offset,
            "connections": observe_connections(args.instances),
        }
        if args.host_snaps:
            result["host_snaps"] = observe_host_snaps()
            result["device_model"] = observe_device_model()
            result["confinement_level"] = observe_confinement_level()
    finally:
        _snap_listing = None
    return result


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        return serve(sys.argv[2])
    result = observe(parse_args(sys.argv[1:]))
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


# -- the long-lived server -----------------------------------------------------------------

REQUESTS_FIFO = "requests"
PID_FILE = "pid"
IDLE_EXIT_SECONDS = 1800  # a server nobody asks for half an hour ends itself
REPLY_OPEN_SECONDS = 10.0  # how long the asker gets to open its reply FIFO


def open_reply(path: str) -> int | None:
    """The reply FIFO opened for writing once its asker reads it (None: the asker is gone).
    Opened before the observation, so that if this process dies the asker sees end of file at
    once instead of waiting for its timeout."""
    deadline = time.monotonic() + REPLY_OPEN_SECONDS
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno not in (errno.ENXIO, errno.ENOENT) or time.monotonic() > deadline:
                return None
            time.sleep(0.001)
            continue
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return fd


def answer(line: bytes) -> None:
    """Answer one request line: {"argv": [observer arguments], "reply": FIFO path}."""
    try:
        request = json.loads(line)
        reply = str(request["reply"])
    except (ValueError, KeyError, TypeError):
        return
    fd = open_reply(reply)
    if fd is None:
        return
    try:
        result = observe(parse_args([str(arg) for arg in request.get("argv") or []]))
        text = json.dumps(result, sort_keys=True)
    except BaseException as exc:  # the asker gets the reason, this process stays up
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = json.dumps({"observer_error": "".join(traceback.format_exception(exc))[-4000:]})
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError:
        pass  # the asker gave up (timeout): nothing to tell


def serve(directory: str) -> int:
    """Answer requests written into DIRECTORY/requests, one JSON object a line, until idle."""
    fifo = os.path.join(directory, REQUESTS_FIFO)
    # Read and write: the FIFO never reports end of file between askers, and an asker's
    # write never blocks while this process lives.
    fd = os.open(fifo, os.O_RDWR)
    with open(os.path.join(directory, PID_FILE) + ".new", "w") as handle:
        handle.write(f"{os.getpid()}\n")
    os.replace(os.path.join(directory, PID_FILE) + ".new", os.path.join(directory, PID_FILE))
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], IDLE_EXIT_SECONDS)
        if not ready:
            with open(os.path.join(directory, PID_FILE), "w"):
                pass  # an empty pid file: the next asker starts a new server
            return 0
        chunk = os.read(fd, 65536)
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                answer(line)


if __name__ == "__main__":
    sys.exit(main())
