"""The served store of one host session: the model's store world written as a catalog, signed
with the test keys of the host's snapd build, carried to the host and served there.

One server runs per host (snapd on it has one store URL); each run publishes its own world, so
the served catalog always equals the run's model catalog. A run's store snaps are removed when
it ends: every later request carries installed store snaps as context, and the model of the
next run must not meet them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snapconform.conformance.operations import fixture_spec
from snapconform.conformance.store_steps import Misbehaviour, StoreWorld
from snapconform.harness.fixtures import build_snap
from snapconform.harness.shell import Shell
from snapconform.harness.store_carrier import StoreCarrier
from snapconform.hosts.base import Host, HostUnavailable
from snapconform.model import snapd as model
from snapconform.model.epoch import Epoch
from snapconform.served_store import catalog as served_catalog
from snapconform.served_store import request_log
from snapconform.served_store.assertions import TestKeys, snap_id_for


def keys_dir_of(host: Host) -> Path:
    """Where the test keys of the host's snapd build are (they stay in the cache dir)."""
    build = getattr(host, "snapd_build", None)
    keys = getattr(build, "keys_dir", None)
    if keys is None:
        raise HostUnavailable(
            f"{host.url}: no test-keys snapd build is known for this host, so nothing can sign"
            " for its store; use a store-tier host such as nspawn://bookworm?snapd=testkeys"
        )
    return Path(keys)


def served_misbehave(misbehaviour: Misbehaviour) -> served_catalog.Misbehave:
    """The model's misbehaviour as the catalog writer spells it."""
    # One header changed after signing: the signature no longer matches what it covers.
    tampered = [
        served_catalog.Tamper(snap, assertion, "snap-name", "tampered")
        if assertion == "snap-declaration"
        else served_catalog.Tamper(snap, assertion, "snap-size", "1", revision=revision)
        for snap, assertion, revision in misbehaviour.tampered
    ]
    return served_catalog.Misbehave(
        status=misbehaviour.status,
        offer_unreadable=dict(misbehaviour.offer_unreadable),
        report_epoch={
            name: {revision: Epoch.parse_yaml(text)}
            for name, revision, text in misbehaviour.report_epoch
        },
        wrong_sha3_384={name: None for name in misbehaviour.wrong_sha3},
        tampered=tampered,
    )


class ServedStore:
    """The store on one host: started at the first publish, rewritten at each one."""

    def __init__(self, shell: Shell, host: Host, local_dir: Path, cache_dir: Path | None) -> None:
        self.shell = shell
        self.host = host
        self.local_dir = local_dir
        self.cache_dir = cache_dir
        self.writer = served_catalog.CatalogWriter(TestKeys.load(keys_dir_of(host)))
        self.carrier = StoreCarrier(shell, host)
        self.started = False
        self.down = False
        self._built: dict[model.SnapFile, Path] = {}

    def build(self, snap: model.SnapFile) -> Path:
        path = self._built.get(snap)
        if path is None:
            path = build_snap(fixture_spec(snap), cache_dir=self.cache_dir)
            self._built[snap] = path
        return path

    def publish(self, world: StoreWorld) -> int:
        """Serve `world` from now on; returns the request log's mark after the swap."""
        snaps = served_catalog.snaps_of(world.catalog, self.build)
        directory = self.writer.write(self.local_dir, snaps, served_misbehave(world.misbehaviour))
        if not self.started:
            mark = self.carrier.start(directory)
            self.started = True
        else:
            mark = self.carrier.update(directory)
        if world.misbehaviour.down and not self.down:
            self.carrier.down()
            self.down = True
        elif not world.misbehaviour.down and self.down:
            mark = self.carrier.restart()
            self.down = False
        return mark

    def stop(self) -> None:
        if self.started:
            self.carrier.stop()
            self.started = False

    def snap_ids(self, names: list[str]) -> dict[str, str]:
        """snap-id -> snap name for the names a run uses (the served store derives ids so)."""
        return {snap_id_for(name): name for name in names}

    def journal(self) -> str:
        return self.carrier.journal() if self.started else ""


def describe_requests(requests: list[dict[str, Any]], snap_ids: dict[str, str]) -> list[str]:
    """Observed POSTs to /v2/snaps/refresh as the comparable lines of `request_lines`."""
    return request_log.describe_requests(requests, snap_ids)


def request_lines(requests: tuple[model.StoreRequest, ...]) -> list[str]:
    """The model's predicted requests, one comparable line each (as request_log describes
    what snapd sent)."""
    lines = []
    for request in requests:
        if request.purpose == "assertions":
            lines.append(request_log.request_line("assertions", [], []))
            continue
        context = [
            request_log.context_line(
                entry.instance.partition("_")[0],
                entry.revision,
                entry.tracking_channel,
                {"read": list(entry.epoch.read), "write": list(entry.epoch.write)},
            )
            for entry in request.context
        ]
        acts = [
            request_log.action_line(
                action.action, action.instance.partition("_")[0], action.channel, action.revision
            )
            for action in request.actions
        ]
        purpose = "install" if request.purpose == "install" else "refresh"
        lines.append(request_log.request_line(purpose, context, acts))
    return lines
