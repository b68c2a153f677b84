"""Carries the served store to a host and runs it there, by path: it never imports the model.

`StoreCarrier(shell, host)` puts the store's server program (snapconform/served_store/
server_program.py) and a copy of the `snapconform/model` package on the host, puts a catalog
directory next to them and runs the server as a transient systemd unit bound to the port of
`host.store_url` (127.0.0.1 inside the host: the container keeps no network). The catalog lives
in numbered generations behind a symlink (`catalog -> catalog.N`); `update` makes the next
generation from hard links of the current one plus what changed, then swaps the symlink, so
the server sees one whole catalog or the other. The server appends one JSON line per request to
`log_path`; a mark is a byte offset in it (the observer reads the same log by offset).

Host layout under /var/tmp/snapconform/store: `program/` (server and model), `catalog` and
`catalog.N/`, `requests.log`. Round trips through the framed shell: `start` one (plus one
`put_file` of a tar), `update`, `down`, `restart` and `stop` one each; `start`, `update` and
`restart` return the log's mark.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shlex
import tarfile
import tempfile
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from snapconform.harness.fixtures import HOST_WORK_DIR
from snapconform.harness.shell import CommandResult, Shell
from snapconform.hosts.base import Host, HostError

STORE_DIR = HOST_WORK_DIR / "store"
UNIT = "snapconform-store"
START_TIMEOUT = 60.0  # python3 start-up plus the model's import; seconds
COMMAND_TIMEOUT = 60.0
INLINE_LIMIT = 256 * 1024  # bytes of tar sent inside the command itself; more goes by put_file
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


class StoreCarrierError(HostError):
    """The served store could not be put on the host or started (never a verdict on snapd)."""


def store_port(url: str) -> int:
    """The port of a loopback store URL (snapd's SNAPPY_FORCE_API_URL on the host)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_NAMES or parts.port is None:
        raise ValueError(f"store URL {url!r}: expected http://127.0.0.1:PORT")
    return parts.port


def program_files() -> dict[str, bytes]:
    """The server and the model package as the installed snapconform holds them, by path.

    Read as files (importlib.resources), not imported: the harness must not import the model.
    """
    root = resources.files("snapconform")
    files = {
        "server_program.py": root.joinpath("served_store", "server_program.py").read_bytes(),
        "snapconform/__init__.py": root.joinpath("__init__.py").read_bytes(),
    }
    for entry in root.joinpath("model").iterdir():
        if entry.name.endswith(".py") and entry.is_file():
            files[f"snapconform/model/{entry.name}"] = entry.read_bytes()
    if "snapconform/model/store.py" not in files:
        raise StoreCarrierError("the installed snapconform has no model/store.py to serve from")
    return files


def catalog_files(catalog_dir: Path) -> dict[str, Path]:
    """Every file of a catalog directory, by its path relative to it."""
    if not (catalog_dir / "catalog.json").is_file():
        raise StoreCarrierError(f"{catalog_dir} is not a catalog directory: no catalog.json")
    return {
        path.relative_to(catalog_dir).as_posix(): path
        for path in sorted(catalog_dir.rglob("*"))
        if path.is_file()
    }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class StoreCarrier:
    """The served store on one host: put it there, feed it catalogs, read its request log."""

    def __init__(
        self,
        shell: Shell,
        host: Host | None = None,
        *,
        store_url: str | None = None,
        remote_dir: str = str(STORE_DIR),
        unit: str = UNIT,
    ) -> None:
        self.shell = shell
        self.host = host or shell.host
        url = store_url or getattr(self.host, "store_url", None)
        if not url:
            raise StoreCarrierError(
                f"{self.host.url}: this host names no store URL (its snapd is not pointed at a"
                " served store); use a store-tier host such as nspawn://bookworm?snapd=testkeys"
            )
        self.store_url = url
        self.port = store_port(url)
        self.remote_dir = PurePosixPath(remote_dir)
        self.unit = unit
        self.generation = 0
        self.last_mark = 0
        self._pushed: dict[str, str] = {}  # relative path -> sha256 of the current generation

    # -- paths -----------------------------------------------------------------------------

    @property
    def log_path(self) -> str:
        return str(self.remote_dir / "requests.log")

    @property
    def catalog_path(self) -> str:
        return str(self.remote_dir / "catalog")

    def _q(self, *parts: str) -> str:
        return shlex.quote(str(self.remote_dir.joinpath(*parts)))

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, catalog_dir: Path) -> int:
        """Put program and catalog on the host, start the server, wait until it listens.

        Anything a previous carrier left (unit, files, log) is replaced. Returns the log mark.
        """
        files = catalog_files(catalog_dir)
        members = {f"program/{name}": data for name, data in program_files().items()}
        members.update({f"catalog.1/{name}": path.read_bytes() for name, path in files.items()})
        payload = _tar(members)
        push = str(self.remote_dir.parent / f".{self.remote_dir.name}-push.tar")
        with tempfile.TemporaryDirectory(prefix="snapconform-store-") as scratch:
            local = Path(scratch) / "push.tar"
            local.write_bytes(payload)
            self.host.put_file(local, push)
        directory = shlex.quote(str(self.remote_dir))
        script = "\n".join(
            [
                "set -e",
                self._stop_unit_text(),
                f"rm -rf -- {directory}",
                f"mkdir -p -- {directory}",
                f"tar -C {directory} --no-same-owner -xf {shlex.quote(push)}",
                f"rm -f -- {shlex.quote(push)}",
                f"ln -sfn catalog.1 {self._q('catalog')}",
                self._run_unit_text(),
                self._mark_text(),
            ]
        )
        result = self._run(script, "start the served store", timeout=START_TIMEOUT)
        self.generation = 1
        self._pushed = {name: _digest(path) for name, path in files.items()}
        self.last_mark = self._parse_mark(result)
        return self.last_mark

    def update(self, catalog_dir: Path) -> int:
        """Make `catalog_dir` the served catalog (atomically); returns the log mark."""
        if self.generation == 0:
            raise StoreCarrierError("update() before start(): the store is not on the host")
        files = catalog_files(catalog_dir)
        digests = {name: _digest(path) for name, path in files.items()}
        changed = {n: files[n].read_bytes() for n, d in digests.items() if self._pushed.get(n) != d}
        removed = sorted(set(self._pushed) - set(digests))
        current, following = f"catalog.{self.generation}", f"catalog.{self.generation + 1}"
        lines = [
            "set -e",
            f"cd {self._q()}",
            f"rm -rf -- {shlex.quote(following)}",
            f"cp -al -- {shlex.quote(current)} {shlex.quote(following)}",
        ]
        if changed:
            payload = _tar(changed)
            if len(payload) <= INLINE_LIMIT:
                encoded = base64.b64encode(payload).decode("ascii")
                lines.append(
                    f"printf %s {shlex.quote(encoded)} | base64 -d"
                    f" | tar -C {shlex.quote(following)} --no-same-owner -xf -"
                )
            else:
                push = str(self.remote_dir / ".push.tar")
                with tempfile.TemporaryDirectory(prefix="snapconform-store-") as scratch:
                    local = Path(scratch) / "push.tar"
                    local.write_bytes(payload)
                    self.host.put_file(local, push)
                lines.append(f"tar -C {shlex.quote(following)} --no-same-owner -xf .push.tar")
                lines.append("rm -f .push.tar")
        for name in removed:
            lines.append(f"rm -f -- {shlex.quote(f'{following}/{name}')}")
        lines += [
            f"ln -sfn {shlex.quote(following)} catalog.next",
            "mv -T catalog.next catalog",
            # Keep the previous generation: a request already reading it may still be running.
            f"for old in catalog.[0-9]*; do case $old in {shlex.quote(current)}"
            f'|{shlex.quote(following)}) ;; *) rm -rf -- "$old" ;; esac; done',
            self._mark_text(),
        ]
        result = self._run("\n".join(lines), "update the served catalog")
        self.generation += 1
        self._pushed = digests
        self.last_mark = self._parse_mark(result)
        return self.last_mark

    def down(self) -> None:
        """Stop the server, keeping its files: the "store down" fault (nothing listens)."""
        self._run(self._stop_unit_text(), "stop the served store")

    def restart(self) -> int:
        """Start the server again on the current catalog (after `down`); returns the mark."""
        if self.generation == 0:
            raise StoreCarrierError("restart() before start(): the store is not on the host")
        script = "\n".join(
            ["set -e", self._stop_unit_text(), self._run_unit_text(), self._mark_text()]
        )
        result = self._run(script, "restart the served store", timeout=START_TIMEOUT)
        self.last_mark = self._parse_mark(result)
        return self.last_mark

    def stop(self) -> None:
        """Stop the server and remove the unit and every file of it from the host."""
        script = f"{self._stop_unit_text()}\nrm -rf -- {self._q()}"
        self._run(script, "remove the served store")
        self.generation = 0
        self._pushed = {}
        self.last_mark = 0

    def running(self) -> bool:
        result = self.shell.run(
            f"systemctl is-active --quiet {shlex.quote(self.unit + '.service')}",
            timeout=COMMAND_TIMEOUT,
        )
        return result.exit_code == 0

    def journal(self, lines: int = 40) -> str:
        """What the server printed (its stderr goes to the journal): for failure reports."""
        return self.shell.run(self._journal_text(lines), timeout=COMMAND_TIMEOUT).output

    # -- command texts ---------------------------------------------------------------------

    def _stop_unit_text(self) -> str:
        service = shlex.quote(self.unit + ".service")
        return (
            f"systemctl stop {service} >/dev/null 2>&1 || true; "
            f"systemctl reset-failed {service} >/dev/null 2>&1 || true"
        )

    def _run_unit_text(self) -> str:
        argv = [
            "systemd-run",
            f"--unit={self.unit}",
            "--collect",
            "--quiet",
            "--property=Type=notify",
            "--property=TimeoutStartSec=30",
            "--setenv=PYTHONDONTWRITEBYTECODE=1",
            "--",
            "python3",
            str(self.remote_dir / "program" / "server_program.py"),
            "--port",
            str(self.port),
            "--catalog",
            self.catalog_path,
            "--log",
            self.log_path,
        ]
        # Type=notify: systemd-run returns once the server said READY=1 (it is listening), or
        # fails when it exits first; then its own words are in the journal.
        return f"{shlex.join(argv)} || {{ {self._journal_text(20)}; exit 1; }}"

    def _journal_text(self, lines: int) -> str:
        unit = shlex.quote(self.unit + ".service")
        return f"journalctl -u {unit} -o cat -n {int(lines)} --no-pager 2>&1"

    def _mark_text(self) -> str:
        log = shlex.quote(self.log_path)
        return f"stat -c %s {log} 2>/dev/null || echo 0"

    # -- helpers ---------------------------------------------------------------------------

    def _run(self, script: str, what: str, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        result = self.shell.run(script, timeout=timeout)
        if result.exit_code != 0:
            raise StoreCarrierError(
                f"{self.host.url}: cannot {what} (exit {result.exit_code}): {result.output[-2000:]}"
            )
        return result

    @staticmethod
    def _parse_mark(result: CommandResult) -> int:
        lines = result.output.strip().splitlines()
        try:
            return int(lines[-1])
        except (IndexError, ValueError):
            raise StoreCarrierError(
                f"expected the log size, got {result.output[-200:]!r}"
            ) from None
