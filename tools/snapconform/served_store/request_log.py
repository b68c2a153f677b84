"""The served store's request log read as the model predicts requests: one line per POST to
/v2/snaps/refresh (snap names, not instance keys: snapd sends opaque keys for parallel
instances; refresh and re-refresh alike).

Standard library only, and importing nothing of snapconform: the conformance layer imports it
to compare each step, and reproducers ship this very file to run on a host without snapconform:

    python3 request_log.py RUN_DIR

RUN_DIR holds the server's requests.log and catalog/ (catalog.json names each snap-id); that
prints one line per POST with the store's answers, writes RUN_DIR/step-requests (the lines
joined by " | ") and remembers how far it read in RUN_DIR/seen.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REFRESH_PATH = "/v2/snaps/refresh"


def context_line(name: str, revision: str, tracking: str, epoch: dict[str, Any]) -> str:
    read = ",".join(str(n) for n in epoch.get("read") or [])
    write = ",".join(str(n) for n in epoch.get("write") or [])
    return f"{name} r{revision} {tracking} epoch {read}/{write}"


def action_line(action: str, name: str, channel: str | None, revision: str | None) -> str:
    parts = [action, name]
    if channel is not None:
        parts.append(f"channel={channel}")
    if revision is not None:
        parts.append(f"revision={revision}")
    return " ".join(parts)


def request_line(purpose: str, context: list[str], actions: list[str]) -> str:
    """`purpose` is "assertions" (alone), "install" or "refresh"."""
    if purpose == "assertions":
        return purpose
    return (
        f"{purpose}: context [{'; '.join(sorted(context))}] actions [{'; '.join(sorted(actions))}]"
    )


def is_refresh_post(entry: dict[str, Any]) -> bool:
    return entry.get("method") == "POST" and str(entry.get("path", "")).startswith(REFRESH_PATH)


def describe_post(entry: dict[str, Any], names: dict[str, str]) -> str:
    """One logged POST to /v2/snaps/refresh; `names` maps snap-id to snap name."""
    body = entry.get("request") if isinstance(entry.get("request"), dict) else {}
    actions = body.get("actions") or []
    if any(action.get("action") == "fetch-assertions" for action in actions):
        return request_line("assertions", [], [])
    purpose = "install" if any(a.get("action") == "install" for a in actions) else "refresh"
    context = [
        context_line(
            names.get(str(item.get("snap-id")), "?"),
            str(item.get("revision")),
            str(item.get("tracking-channel")),
            item.get("epoch") or {},
        )
        for item in body.get("context") or []
    ]
    acts = [
        action_line(
            str(action.get("action")),
            str(action.get("name") or names.get(str(action.get("snap-id")), "?")),
            action.get("channel"),
            None if action.get("revision") is None else str(action.get("revision")),
        )
        for action in actions
    ]
    return request_line(purpose, context, acts)


def describe_requests(entries: list[dict[str, Any]], names: dict[str, str]) -> list[str]:
    """Every POST to /v2/snaps/refresh among the logged requests, described in order."""
    return [describe_post(entry, names) for entry in entries if is_refresh_post(entry)]


def _answers(entry: dict[str, Any], names: dict[str, str]) -> str:
    answers = []
    for result in entry.get("results") or []:
        name = str(result.get("name") or names.get(str(result.get("snap-id")), "?"))
        if result.get("result") == "error":
            answers.append(f"{name} error {(result.get('error') or {}).get('code')}")
        else:
            answers.append(
                f"{name} r{result.get('revision')} from {result.get('effective-channel')}"
            )
    return "; ".join(answers)


def main(run_dir: Path) -> int:
    """The reproducer's view: what snapd asked since the last call (see the module docstring)."""
    seen_file, log = run_dir / "seen", run_dir / "requests.log"
    seen = int(seen_file.read_text()) if seen_file.exists() else 0
    data = log.read_bytes() if log.exists() else b""
    whole = data[seen : data.rfind(b"\n") + 1] if len(data) > seen else b""
    try:
        snaps = json.loads((run_dir / "catalog" / "catalog.json").read_text()).get("snaps", {})
        names = {entry["snap-id"]: name for name, entry in snaps.items()}
    except (OSError, ValueError, KeyError):
        names = {}
    described = []
    for line in whole.decode("utf-8", "replace").splitlines():
        entry = json.loads(line)
        if not is_refresh_post(entry):
            continue
        described.append(describe_post(entry, names))
        print(f"#   store: {described[-1]} -> {entry.get('status')} {_answers(entry, names)}")
    (run_dir / "step-requests").write_text(" | ".join(described))
    seen_file.write_text(str(seen + len(whole)))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
