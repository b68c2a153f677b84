"""Runs ON THE HOST (python3, standard library only) and prints one JSON observation.

The harness copies this file to the host once and runs it after every operation, so that one
round trip reads everything: snapd's view over its REST API (/run/snapd.socket), each revision's
meta/snap.yaml, the data directories, and the fixture hook log. It must not import snapconform:
the host has only a stock python3.

Usage: python3 observe.py --hook-log PATH [--truncate-hook-log] [--since-change N]
       [--store-log PATH --store-log-from OFFSET] INSTANCE...
"""

import argparse
import http.client
import json
import os
import socket
import sys

SNAPD_SOCKET = "/run/snapd.socket"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
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


def observe_instance(instance: str) -> dict:
    status, body = rest_get(f"/v2/snaps?select=all&snaps={instance}")
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
    }


def observe_changes(since: int | None) -> tuple[list[dict], int]:
    """Changes newer than `since` (none when since is None) and the newest change's id, from
    one request: this runs after every step."""
    status, body = rest_get("/v2/changes?select=all")
    if status != 200:
        return [], 0
    everything = body.get("result") or []
    last = max((int(change.get("id", 0)) for change in everything), default=0)
    if since is None:
        return [], last
    changes = []
    for change in everything:
        if int(change.get("id", 0)) <= since:
            continue
        changes.append(
            {
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
        )
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hook-log", required=True)
    parser.add_argument("--truncate-hook-log", action="store_true")
    parser.add_argument("--since-change", type=int, default=None)
    parser.add_argument("--store-log", default=None)
    parser.add_argument("--store-log-from", type=int, default=0)
    parser.add_argument("instances", nargs="*")
    args = parser.parse_args()

    hook_log = read_text(args.hook_log) or ""
    if args.truncate_hook_log and os.path.exists(args.hook_log):
        with open(args.hook_log, "w"):
            pass
    changes, last_change = observe_changes(args.since_change)
    store_requests, store_log_offset = read_store_log(args.store_log, args.store_log_from)
    result = {
        "instances": [observe_instance(name) for name in args.instances],
        "hook_log": hook_log.splitlines(),
        "changes": changes,
        "last_change": last_change,
        "store_requests": store_requests,
        "store_log_offset": store_log_offset,
    }
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
