"""``hosts create lxd://NAME`` and ``hosts delete lxd://NAME``: a seeded instance, and its end.

create: an LXD daemon (lxd_daemon.ensure_daemon), the image built offline and imported
(images.lxd_image; ``lxc image import`` once per recipe), a ``dir`` storage pool, the
``snapconform`` profile (the root disk and ``/dev/fuse`` as a ``unix-char`` device, mode 0666;
no NIC, so no network), then ``lxc init`` with that profile alone, start, seed (the offline
stand-ins and the refresh hold, as the golden recipe does), a clean stop, the ``sc-pristine``
snapshot that every reset restores, start, and the CPU pin. A creation that fails part way
deletes its half-made instance.

The store tier of ``lxd://NAME`` (``lxd://NAME?snapd=testkeys``) is the instance ``NAME-store``:
made the same way from an image whose snapd is the release's own source package rebuilt with
the test keys (images.snapd_build, cached; ~6 minutes the first time) plus the drop-in that points
snapd at the store served on the instance's loopback (images.store_tier). It records the build
(``user.snapconform.snapd``) and the instance it serves (``user.snapconform.store-tier-of``).

delete: only an instance ``hosts create`` made (it carries ``user.snapconform.release``), with
its store tier when there is one. The last one deleted takes the profile, our images and a pool
we created with it, and the daemon too when we started that daemon.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from snapconform.hosts import lxd_daemon, lxd_instance
from snapconform.hosts.base import HostError
from snapconform.hosts.lxd_instance import (
    IMAGE_KEY,
    INSTANCE_NAME,
    MARK,
    SNAPD_KEY,
    SNAPSHOT,
    STORE_TIER_OF,
    lxc,
    lxc_ok,
)
from snapconform.images import cache, lxd_image, snapd_build, store_tier
from snapconform.images.releases import DEFAULT_MODES, RELEASES

PROFILE = "snapconform"
OWN_POOL = "snapconform"  # made only when the daemon has no dir pool
STOP_SECONDS = 60

Say = Callable[[str], None]


class BadRequest(ValueError):
    """The request cannot be done as asked (bad name, unknown release, instance exists)."""


@dataclass
class CreateReport:
    name: str
    release: str
    image: str
    snapd_version: str
    snapd_build: str  # "archive" or "testkeys VERSION"
    cpu: int
    daemon: str  # "running" (the machine's) or "started PID N"
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def profile_config(pool: str) -> dict[str, object]:
    """The snapconform profile: the root disk on ``pool`` and a /dev/fuse root can open."""
    return {
        "description": "snapconform: snapd under test; no network, /dev/fuse for squashfuse",
        "config": {},
        "devices": {
            "root": {"type": "disk", "path": "/", "pool": pool},
            "fuse": {
                "type": "unix-char",
                "source": "/dev/fuse",
                "path": "/dev/fuse",
                "mode": "0666",
            },
        },
    }


def _query(path: str) -> object:
    return json.loads(lxc_ok("query", path) or "null")


def choose_pool(say: Say) -> str:
    """A dir storage pool: the default profile's when it is one, else any, else one we make."""
    pools = _query("/1.0/storage-pools?recursion=1")
    drivers = {str(p["name"]): str(p["driver"]) for p in pools or [] if isinstance(p, dict)}
    default = _query("/1.0/profiles/default")
    devices = default.get("devices", {}) if isinstance(default, dict) else {}
    root = devices.get("root", {}) if isinstance(devices, dict) else {}
    preferred = root.get("pool") if isinstance(root, dict) else None
    if preferred and drivers.get(preferred) == "dir":
        return str(preferred)
    for name, driver in sorted(drivers.items()):
        if driver == "dir":
            return name
    say(f"LXD has no dir storage pool; creating {OWN_POOL!r} (driver dir)")
    lxc_ok("storage", "create", OWN_POOL, "dir")
    return OWN_POOL


def ensure_profile(pool: str) -> None:
    if lxc("profile", "show", PROFILE, timeout=30).returncode != 0:
        lxc_ok("profile", "create", PROFILE)
    lxc_ok("profile", "edit", PROFILE, stdin_text=json.dumps(profile_config(pool)))


def ensure_imported(image: lxd_image.LxdImage, say: Say) -> None:
    if lxc("image", "info", image.alias, timeout=30).returncode == 0:
        return
    say(f"importing the LXD image {image.alias}")
    lxc_ok("image", "import", str(image.metadata), str(image.rootfs), "--alias", image.alias)


def check_request(name: str, release: str) -> None:
    """Refuse what cannot be made before anything is done (BadRequest, one line)."""
    if not INSTANCE_NAME.fullmatch(name):
        raise BadRequest(
            f"{name!r} is not an LXD instance name (letters, digits and hyphens, "
            "starting with a letter, at most 63)"
        )
    if release not in RELEASES:
        raise BadRequest(f"unknown release {release!r}; known: {', '.join(RELEASES)}")


def image_recipe(
    release: str, snapd: str, say: Say, cache_dir: Path | None = None
) -> lxd_image.LxdImageRecipe:
    """The image recipe for ``snapd`` ("archive", or "testkeys": its build made first)."""
    if snapd == "archive":
        return lxd_image.LxdImageRecipe(release)
    if snapd != store_tier.FLAVOUR:
        raise BadRequest(f"unknown snapd {snapd!r}; known: {', '.join(store_tier.SNAPD_CHOICES)}")
    build = snapd_build.ensure_testkeys_build(release, cache_dir, progress=say)
    # The golden store recipe's override: the same .debs, hold and SNAPPY_FORCE_API_URL drop-in.
    override = store_tier.store_recipe(release, DEFAULT_MODES[release], build).snapd
    return lxd_image.LxdImageRecipe(release, override)


@contextlib.contextmanager
def creation_lock(name: str) -> Iterator[None]:
    """Held while instance ``name`` is made: a run that finds it half made waits for it."""
    with cache.locked(cache.lock_path(lxd_image.images_root(), f"instance-{name}")):
        yield


def create_instance(
    name: str,
    release: str,
    say: Say,
    cache_dir: Path | None = None,
    snapd: str = "archive",
    store_tier_of: str | None = None,
) -> CreateReport:
    """Make instance ``name``; ``snapd="testkeys"`` makes a store tier (of ``store_tier_of``)."""
    check_request(name, release)
    clock = time.monotonic()
    seconds: dict[str, float] = {}

    def lap(what: str) -> None:
        nonlocal clock
        now = time.monotonic()
        seconds[what] = round(now - clock, 2)
        clock = now

    ours_before = lxd_daemon.read_record()
    record = lxd_daemon.ensure_daemon(say)
    daemon = f"started PID {record.pid}" if record is not None else "running"
    lap("daemon")
    try:
        with creation_lock(name):
            if lxd_instance.instance_facts(name) is not None:
                raise BadRequest(
                    f"LXD instance {name!r} exists already (hosts delete lxd://{name})"
                )
            recipe = image_recipe(release, snapd, say, cache_dir)
            extra = {SNAPD_KEY: recipe.snapd_build} if recipe.snapd is not None else {}
            if store_tier_of is not None:
                extra[STORE_TIER_OF] = store_tier_of
            report = _create(name, recipe, say, cache_dir, lap, extra)
    except BaseException:
        if record is not None and (ours_before is None or not ours_before.alive()):
            lxd_daemon.stop_daemon_if_ours(say)  # started for this instance only
        raise
    alias, version, cpu = report
    return CreateReport(name, release, alias, version, recipe.snapd_build, cpu, daemon, seconds)


def _create(
    name: str,
    recipe: lxd_image.LxdImageRecipe,
    say: Say,
    cache_dir: Path | None,
    lap: Callable[[str], None],
    extra_config: dict[str, str],
) -> tuple[str, str, int]:
    """Image, profile, instance, seed, snapshot, pin: (image alias, snapd version, CPU)."""
    release = recipe.release
    image = lxd_image.ensure_image(recipe, cache_dir)
    lap("image build")
    ensure_imported(image, say)
    ensure_profile(choose_pool(say))
    lap("image import")
    made = False
    try:
        lxc_ok(
            "init",
            image.alias,
            name,
            "--profile",
            PROFILE,
            "--config",
            f"{MARK}={release}",
            "--config",
            f"{IMAGE_KEY}={image.alias}",
            *(arg for key, value in extra_config.items() for arg in ("--config", f"{key}={value}")),
        )
        made = True
        lxd_instance.start(name)
        lap("launch")
        say(f"seeding lxd://{name}: the core and snapd stand-ins, refreshes held")
        seeded = lxd_instance.run_in(name, lxd_image.seed_script(image.snapd_version), 300)
        if seeded.returncode != 0:
            raise HostError(
                f"seeding lxd://{name} failed (exit {seeded.returncode}): "
                f"{lxd_instance.last_line(seeded.stdout + seeded.stderr)}"
            )
        lap("seed")
        if lxc("stop", name, f"--timeout={STOP_SECONDS}", timeout=STOP_SECONDS + 30).returncode:
            lxc_ok("stop", "--force", name)
        lxc_ok("snapshot", name, SNAPSHOT)
        lap("snapshot")
        lxd_instance.start(name)
        cpu = lxd_instance.pin(name)
        lap("start and CPU probe")
    except BaseException:
        if made:
            lxc("delete", "--force", name)
        raise
    return image.alias, image.snapd_version, cpu


def delete_instance(name: str, say: Say) -> list[str]:
    """Delete an instance `hosts create` made (and its store tier, NAME-store, when `hosts
    create` made one), then what only they needed; returns what was done."""
    check_request(name, RELEASES[0])
    if not lxd_daemon.daemon_answers():
        raise BadRequest(f"no LXD daemon answers here, so there is no instance {name!r}")
    facts = lxd_instance.instance_facts(name)
    companion = store_tier_companion(name)
    if facts is None and companion is None:
        raise BadRequest(f"LXD has no instance {name!r}")
    if facts is not None and not facts.made_by_snapconform:
        raise BadRequest(
            f"LXD instance {name!r} was not made by `snapconform hosts create` (it has no "
            f"{MARK}); delete it yourself (lxc delete --force {name})"
        )
    actions = []
    if facts is not None:
        lxc_ok("delete", "--force", name)
        actions.append(f"deleted lxd://{name} and its snapshots")
    else:  # the first store test made NAME-store alone (README: store tier on LXD)
        actions.append(f"LXD has no instance {name!r}, only its store tier")
    if companion is not None:
        lxc_ok("delete", "--force", companion)
        actions.append(f"deleted its store tier lxd://{companion} and its snapshots")
    actions += remove_shared_if_unused()
    actions += lxd_daemon.stop_daemon_if_ours(lambda _line: None)
    for action in actions:
        say(action)
    return actions


def store_tier_companion(name: str) -> str | None:
    """The instance `hosts create` made as the store tier of ``name``, if there is one."""
    try:
        companion = lxd_instance.store_tier_name(name)
    except ValueError:
        return None
    facts = lxd_instance.instance_facts(companion)
    if facts is None or facts.config.get(STORE_TIER_OF) != name:
        return None
    return companion


def remove_shared_if_unused() -> list[str]:
    """With no snapconform instance left: the profile, our images, and our own pool."""
    instances = _query("/1.0/instances?recursion=1")
    ours = [i for i in instances or [] if isinstance(i, dict) and MARK in (i.get("config") or {})]
    if ours:
        return []
    actions = []
    profile = lxc("query", f"/1.0/profiles/{PROFILE}", timeout=30)
    if profile.returncode == 0 and not (json.loads(profile.stdout or "{}").get("used_by")):
        lxc_ok("profile", "delete", PROFILE)
        actions.append(f"deleted the {PROFILE} profile")
    for image in _query("/1.0/images?recursion=1") or []:
        aliases = [str(a.get("name", "")) for a in image.get("aliases") or []]
        if any(alias.startswith(lxd_image.ALIAS_PREFIX) for alias in aliases):
            lxc_ok("image", "delete", str(image["fingerprint"]))
            actions.append(f"deleted the image {', '.join(aliases)}")
    pools = _query("/1.0/storage-pools?recursion=1") or []
    own = [p for p in pools if isinstance(p, dict) and p.get("name") == OWN_POOL]
    if own and not [user for user in own[0].get("used_by") or [] if "/profiles/" not in user]:
        lxc_ok("storage", "delete", OWN_POOL)
        actions.append(f"deleted the {OWN_POOL} storage pool")
    return actions
