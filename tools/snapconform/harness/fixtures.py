"""Fixture snaps: a small spec becomes a real .snap file, content-addressed in a cache.

A `FixtureSpec` says what a fixture snap is (name, version, the literal epoch text, which hooks
exist and which of them fail, raw extra snap.yaml lines, confinement). `snap_tree` turns it into
the exact files of the snap, `build_snap` packs them into a .snap named after a hash of those
files, so the same spec always gives the same file and is packed only once.

The scripts come from `snaps/templates/` (hook.sh, app.sh; see snaps/README.md). Every hook
appends one line to a log on the host (`HOOK_LOG_PATH`, fields `HOOK_LOG_FIELDS`).

A spec is not a model object: the harness never imports the model, the suites adapt one to the
other. Validation here only refuses what would make the harness itself misbehave; anything snapd
has to judge (bad epochs, bad versions, unknown confinement, odd extra YAML) stays buildable on
purpose, because the bad-input suites need exactly those snaps.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from snapconform.images.snappack import MKSQUASHFS_OPTIONS, pack_snap
from snapconform.paths import cache_root

# The templates live in the source tree, readable on their own (snaps/README.md). The harness is
# used from a checkout (pip install -e), so they are found relative to this file.
# snaps/templates in the checkout; the package's `templates` is a link to it, so a wheel
# (pip install ., tox) carries the same files.
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
MARKER_RE = re.compile(r"(?!\.\.?$)[A-Za-z0-9._-]+")

# Where every fixture hook appends its line, as seen on the host (and, through snap-confine's
# bind mount of /var/tmp, inside every snap's mount namespace). A fixed, root-only path on a
# host under test, not a temporary file of ours: hence the noqa.
# Our working directory ON THE HOST under test (root-only hosts we drive): /var/tmp because
# snap-confine shows hooks the host's /var/tmp (their /tmp is private).
HOST_WORK_DIR = PurePosixPath("/var/tmp/snapconform")  # noqa: S108
HOOK_LOG_PATH = HOST_WORK_DIR / "hooks.log"
# The tab-separated fields of one hook log line, in order (see snaps/templates/hook.sh).
HOOK_LOG_FIELDS = ("instance_name", "hook", "revision", "snap_data", "snap_version")
# Where a hook that reads configuration (HookBehaviour.reads_config) logs each value it got from
# `snapctl get`, and the fields of a line; a value starting with REFUSED_VALUE_PREFIX makes the
# hook fail with `refusing KEY=VALUE` (snaps/templates/hook.sh).
CONFIG_LOG_PATH = HOST_WORK_DIR / "config.log"
CONFIG_LOG_FIELDS = ("instance_name", "hook", "revision", "key", "value")
REFUSED_VALUE_PREFIX = "bad"
CONFIG_KEY_RE = re.compile(r"[a-z0-9](?:-?[a-z0-9])*")

APP_NAME = "mark"
APP_PATH = "bin/mark"
SNAP_YAML_PATH = "meta/snap.yaml"
HOOKS_DIR = "meta/hooks"
# A hook's failure message is data, printed with cat; it never goes into a script.
HOOK_MESSAGES_DIR = "snapconform/hooks"

EXECUTABLE_MODE = 0o755
DATA_MODE = 0o644
# snapd wants "." and meta/ world-readable and executable (snap/container.go).
DIRECTORY_MODE = 0o755

# Hook names every targeted snapd (2.57.6 .. 2.77) supports: facts from snapd's
# snap/hooktypes.go (supportedHooks) at 2.57.6; later releases keep all of these. snapd silently
# ignores any other file in meta/hooks, so a test expecting such a hook to run would wait for a
# log line that never comes. Hooks added after 2.57 (default-configure, prepare-serial-request,
# the *-view-* family) are left out for that reason.
KNOWN_HOOK_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern)
    for pattern in (
        r"prepare-device",
        r"install-device",
        r"configure",
        r"install",
        r"pre-refresh",
        r"post-refresh",
        r"remove",
        r"(?:prepare|unprepare|connect|disconnect)-(?:plug|slot)-[-a-z0-9]+",
        r"check-health",
        r"fde-setup",
        r"gate-auto-refresh",
    )
)

# The name becomes part of file names and of the hook log's first field, so it must be a plain
# word. snapd's own, stricter rules (lower case, 2..40 chars, no "_") are NOT applied here: a
# fixture that breaks them is how a suite checks snapd's refusal.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_NAME_LENGTH = 150  # keeps the .snap file name well under 255 bytes
# YAML line breaks (YAML 1.1, as snapd's yaml.v2 reads it): one of these in the epoch text would
# start a new snap.yaml line, i.e. smuggle in keys. extra_yaml is the way to add lines.
_YAML_LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")
_PLACEHOLDER_RE = re.compile(r"@[A-Z][A-Z_]*@")


def is_known_hook(name: str) -> bool:
    """True when every targeted snapd would run a hook file named ``name``."""
    return any(pattern.fullmatch(name) for pattern in KNOWN_HOOK_PATTERNS)


def _require_utf8(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{what}: cannot be encoded as UTF-8 ({error.reason})") from None


@dataclass(frozen=True)
class HookBehaviour:
    """One hook present in a fixture snap: it succeeds, or fails printing ``fails_with``.

    A failing hook prints the message on stderr exactly as given (no newline added) and exits 1.
    An empty message is allowed: the hook then fails with no output at all.
    """

    name: str
    fails_with: str | None = None
    # A file the hook creates in $SNAP_DATA and $SNAP_COMMON before it succeeds or fails.
    marker: str | None = None
    # Configuration keys the hook reads with `snapctl get` and logs (CONFIG_LOG_PATH).
    reads_config: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads_config", tuple(self.reads_config))
        for key in self.reads_config:
            if not isinstance(key, str) or not CONFIG_KEY_RE.fullmatch(key):
                raise ValueError(
                    f"HookBehaviour.reads_config: {key!r} must be a-z, 0-9 and single '-'"
                )
        if self.marker is not None and not MARKER_RE.fullmatch(self.marker):
            raise ValueError(
                f"HookBehaviour.marker: {self.marker!r} must be letters, digits, '.', '_', '-'"
            )
        if not isinstance(self.name, str) or not is_known_hook(self.name):
            raise ValueError(
                f"HookBehaviour.name: {self.name!r} is not a hook snapd runs "
                "(known: install, configure, pre-refresh, post-refresh, remove, check-health, "
                "gate-auto-refresh, prepare-device, install-device, fde-setup, "
                "(un)prepare/(dis)connect-plug|slot-NAME)"
            )
        if self.fails_with is not None:
            if not isinstance(self.fails_with, str):
                raise ValueError(
                    f"HookBehaviour.fails_with: expected str or None, got "
                    f"{type(self.fails_with).__name__}"
                )
            _require_utf8(self.fails_with, "HookBehaviour.fails_with")

    @property
    def fails(self) -> bool:
        return self.fails_with is not None


SERVICES_DIR = "bin/services"
SERVICE_DAEMONS = ("simple", "oneshot")
# App and slot/plug names: snap/validate.go validAppName / plug and slot names (lower case).
_ENDPOINT_NAME_RE = re.compile(r"[a-z](?:-?[a-z0-9])*")
# Where a content plug's target and a content slot's shared directory are, inside the snap.
CONTENT_PLUG_DIR = "content-in"
CONTENT_SLOT_DIR = "content-out"


@dataclass(frozen=True)
class ServiceBehaviour:
    """One service of a fixture snap (an app with `daemon:`; script: templates/service.sh).

    ``simple`` runs until stopped; ``oneshot`` exits at once, with 0 or, when ``fails``, 1 (so
    `systemctl start` fails). Neither writes any data. A simple service that fails would race
    systemd, so only a oneshot may fail.
    """

    name: str
    daemon: str = "simple"
    fails: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ENDPOINT_NAME_RE.fullmatch(self.name):
            raise ValueError(f"ServiceBehaviour.name: {self.name!r} must be a-z, 0-9 and '-'")
        if self.name == APP_NAME:
            raise ValueError(f"ServiceBehaviour.name: {APP_NAME!r} is the fixture's own app")
        if self.daemon not in SERVICE_DAEMONS:
            raise ValueError(f"ServiceBehaviour.daemon: {self.daemon!r} not in {SERVICE_DAEMONS}")
        if self.fails and self.daemon != "oneshot":
            raise ValueError("ServiceBehaviour.fails: only a oneshot service may fail")


@dataclass(frozen=True)
class ContentEndpoint:
    """A `content` interface plug or slot named ``name`` sharing the content tag ``content``.

    A plug mounts the slot's shared directory on $SNAP/content-in; a slot shares
    $SNAP/content-out (both directories are in the snap).
    """

    name: str
    content: str = "scs-content"

    def __post_init__(self) -> None:
        for what in ("name", "content"):
            value = getattr(self, what)
            if not isinstance(value, str) or not _ENDPOINT_NAME_RE.fullmatch(value):
                raise ValueError(f"ContentEndpoint.{what}: {value!r} must be a-z, 0-9 and '-'")


@dataclass(frozen=True)
class FixtureSpec:
    """What a fixture snap is. Frozen and hashable, so it can key caches and sets.

    ``epoch_yaml`` is the literal text written after ``epoch: `` in meta/snap.yaml (None: no
    epoch key at all), so that invalid epochs such as ``0*``, ``01`` or ``{read: []}`` can be
    built too. ``hooks`` lists the hooks present (absent hooks are simply not listed); it is kept
    sorted by name, so two specs listing the same hooks in another order are equal.
    ``extra_yaml`` is raw text appended to snap.yaml; lines starting in column 0 are top-level keys.
    """

    name: str
    version: str
    epoch_yaml: str | None = None
    hooks: tuple[HookBehaviour, ...] = field(default=())
    extra_yaml: str = ""
    confinement: str = "strict"
    services: tuple[ServiceBehaviour, ...] = field(default=())
    content_plugs: tuple[ContentEndpoint, ...] = field(default=())
    content_slots: tuple[ContentEndpoint, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ValueError(
                f"FixtureSpec.name: {self.name!r} must be letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (it becomes part of file names)"
            )
        if len(self.name) > _MAX_NAME_LENGTH:
            raise ValueError(
                f"FixtureSpec.name: {len(self.name)} characters, at most {_MAX_NAME_LENGTH}"
            )
        for field_name in ("version", "extra_yaml", "confinement"):
            value = getattr(self, field_name)
            if not isinstance(value, str):
                raise ValueError(
                    f"FixtureSpec.{field_name}: expected str, got {type(value).__name__}"
                )
            _require_utf8(value, f"FixtureSpec.{field_name}")
        if self.epoch_yaml is not None:
            if not isinstance(self.epoch_yaml, str):
                raise ValueError(
                    f"FixtureSpec.epoch_yaml: expected str or None, got "
                    f"{type(self.epoch_yaml).__name__}"
                )
            if any(brk in self.epoch_yaml for brk in _YAML_LINE_BREAKS):
                raise ValueError(
                    f"FixtureSpec.epoch_yaml: {self.epoch_yaml!r} must be one line "
                    "(use extra_yaml for additional snap.yaml lines)"
                )
            _require_utf8(self.epoch_yaml, "FixtureSpec.epoch_yaml")
        hooks = self.hooks
        if isinstance(hooks, HookBehaviour) or not isinstance(hooks, Iterable):
            raise ValueError("FixtureSpec.hooks: expected a tuple of HookBehaviour")
        hooks = tuple(hooks)
        for hook in hooks:
            if not isinstance(hook, HookBehaviour):
                raise ValueError(f"FixtureSpec.hooks: {hook!r} is not a HookBehaviour")
        names = [hook.name for hook in hooks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"FixtureSpec.hooks: hook listed twice: {', '.join(duplicates)}")
        # Frozen: normalise through object.__setattr__ (a list in, a sorted tuple kept).
        object.__setattr__(self, "hooks", tuple(sorted(hooks, key=lambda hook: hook.name)))
        _check_named("services", self.services, ServiceBehaviour)
        _check_named("content_plugs", self.content_plugs, ContentEndpoint)
        _check_named("content_slots", self.content_slots, ContentEndpoint)
        for what in ("services", "content_plugs", "content_slots"):
            items = tuple(sorted(getattr(self, what), key=lambda item: item.name))
            object.__setattr__(self, what, items)

    def hook(self, name: str) -> HookBehaviour | None:
        """The behaviour of hook ``name``, or None when the snap has no such hook."""
        for hook in self.hooks:
            if hook.name == name:
                return hook
        return None

    @property
    def hook_names(self) -> tuple[str, ...]:
        return tuple(hook.name for hook in self.hooks)


def _check_named(what: str, items: object, kind: type) -> None:
    if not isinstance(items, Iterable) or isinstance(items, str):
        raise ValueError(f"FixtureSpec.{what}: expected a tuple of {kind.__name__}")
    items = tuple(items)
    if not all(isinstance(item, kind) for item in items):
        raise ValueError(f"FixtureSpec.{what}: every item must be a {kind.__name__}")
    names = [item.name for item in items]  # type: ignore[attr-defined]
    if len(set(names)) != len(names):
        raise ValueError(f"FixtureSpec.{what}: a name is listed twice in {names}")


def yaml_quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar of printable ASCII only.

    Every YAML reader (snapd's yaml.v2 included) reads it back as exactly ``text``, whatever it
    holds: a version like ``1.10`` stays a string, a name like ``null`` is not null.
    """
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def snap_yaml(spec: FixtureSpec) -> str:
    """The text of meta/snap.yaml for ``spec``."""
    lines = [
        f"name: {yaml_quote(spec.name)}",
        f"version: {yaml_quote(spec.version)}",
    ]
    if spec.epoch_yaml is not None:
        lines.append(f"epoch: {spec.epoch_yaml}")
    lines += [
        "summary: snapconform fixture snap",
        "description: A fixture snap built by the snapconform harness to exercise snapd.",
        f"confinement: {yaml_quote(spec.confinement)}",
        "grade: devel",
        # No base: on purpose, fixture apps run on the stand-in core (a static busybox).
        "apps:",
        f"  {APP_NAME}:",
        f"    command: {APP_PATH}",
    ]
    for service in spec.services:
        lines += [
            f"  {service.name}:",
            f"    command: {SERVICES_DIR}/{service.name}",
            f"    daemon: {service.daemon}",
        ]
    lines += _content_yaml("plugs", spec.content_plugs, f"target: $SNAP/{CONTENT_PLUG_DIR}")
    lines += _content_yaml("slots", spec.content_slots, f"read: [$SNAP/{CONTENT_SLOT_DIR}]")
    text = "\n".join(lines) + "\n"
    if spec.extra_yaml:
        text += spec.extra_yaml if spec.extra_yaml.endswith("\n") else spec.extra_yaml + "\n"
    return text


def _content_yaml(key: str, endpoints: tuple[ContentEndpoint, ...], where: str) -> list[str]:
    if not endpoints:
        return []
    lines = [f"{key}:"]
    for endpoint in endpoints:
        lines += [
            f"  {endpoint.name}:",
            "    interface: content",
            f"    content: {endpoint.content}",
            f"    {where}",
        ]
    return lines


def _template(name: str) -> str:
    path = TEMPLATES_DIR / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"fixture template {path} is missing: the installed snapconform is incomplete "
            "(reinstall it with pip install .)"
        ) from None


def _fill(template_name: str, values: dict[str, str]) -> str:
    """Fill a template's @PLACEHOLDER@s with shell-quoted values; every one must be used."""
    text = _template(template_name)
    for placeholder, value in values.items():
        token = f"@{placeholder}@"
        if token not in text:
            raise RuntimeError(f"template {template_name} has no {token}")
        text = text.replace(token, shlex.quote(value))
    leftover = _PLACEHOLDER_RE.search(text)
    if leftover:
        raise RuntimeError(f"template {template_name}: {leftover.group()} was not filled in")
    return text


def hook_script(hook: HookBehaviour) -> str:
    """The text of meta/hooks/NAME for ``hook``."""
    return _fill(
        "hook.sh",
        {
            "HOOK_NAME": hook.name,
            "HOOK_FAILS": "yes" if hook.fails else "no",
            "HOOK_MARKER": hook.marker or "",
            "HOOK_CONFIG_KEYS": " ".join(hook.reads_config),
        },
    )


def service_script(service: ServiceBehaviour) -> str:
    """The text of bin/services/NAME for ``service``."""
    return _fill(
        "service.sh",
        {
            "SERVICE_NAME": service.name,
            "SERVICE_DAEMON": service.daemon,
            "SERVICE_FAILS": "yes" if service.fails else "no",
        },
    )


def app_script() -> str:
    """The text of the `mark` app (no placeholders: the same for every fixture)."""
    return _fill("app.sh", {})


def snap_tree(spec: FixtureSpec) -> dict[str, tuple[bytes, int]]:
    """Every file of the snap: relative path -> (content, mode). Directories are 0755."""
    tree: dict[str, tuple[bytes, int]] = {
        SNAP_YAML_PATH: (snap_yaml(spec).encode("utf-8"), DATA_MODE),
        APP_PATH: (app_script().encode("utf-8"), EXECUTABLE_MODE),
    }
    for hook in spec.hooks:
        tree[f"{HOOKS_DIR}/{hook.name}"] = (hook_script(hook).encode("utf-8"), EXECUTABLE_MODE)
        if hook.fails_with is not None:
            message = hook.fails_with.encode("utf-8")
            tree[f"{HOOK_MESSAGES_DIR}/{hook.name}.stderr"] = (message, DATA_MODE)
    for service in spec.services:
        script = service_script(service).encode("utf-8")
        tree[f"{SERVICES_DIR}/{service.name}"] = (script, EXECUTABLE_MODE)
    # The content directories exist in the snap (a mount point must): a file keeps each.
    if spec.content_plugs:
        tree[f"{CONTENT_PLUG_DIR}/.keep"] = (b"", DATA_MODE)
    if spec.content_slots:
        tree[f"{CONTENT_SLOT_DIR}/shared"] = (b"shared by a content slot\n", DATA_MODE)
    return dict(sorted(tree.items()))


def tree_digest(tree: dict[str, tuple[bytes, int]]) -> str:
    """SHA-256 over every file's path, mode and bytes, plus the packing options.

    The options are in because the .snap's bytes depend on them: changing them must not serve
    files packed the old way from the cache.
    """
    digest = hashlib.sha256(b"snapconform-fixture\0")
    digest.update(" ".join(MKSQUASHFS_OPTIONS).encode() + b"\0")
    for path, (content, mode) in sorted(tree.items()):
        digest.update(f"{path}\0{mode:o}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def snap_file_name(spec: FixtureSpec, tree: dict[str, tuple[bytes, int]] | None = None) -> str:
    """``NAME_VERSION_HASH.snap``; the version part is only a readable hint, the hash decides."""
    tree = snap_tree(spec) if tree is None else tree
    # Versions may hold anything (bad-input fixtures): keep a short, file-name-safe hint.
    version_hint = re.sub(r"[^A-Za-z0-9.+~-]", "-", spec.version)[:32] or "-"
    return f"{spec.name}_{version_hint}_{tree_digest(tree)[:12]}.snap"


def write_tree(spec: FixtureSpec, dest: Path) -> Path:
    """Write the snap's files under ``dest`` (created, must not exist) with their modes."""
    return _write_files(snap_tree(spec), Path(dest))


def _write_files(tree: dict[str, tuple[bytes, int]], dest: Path) -> Path:
    dest.mkdir()
    # mkdir's mode is masked by the umask; snapd needs these modes whatever the umask is.
    dest.chmod(DIRECTORY_MODE)
    for relative, (content, mode) in tree.items():
        path = dest / relative
        for parent in reversed(path.relative_to(dest).parents[:-1]):
            directory = dest / parent
            if not directory.is_dir():
                directory.mkdir()
                directory.chmod(DIRECTORY_MODE)
        path.write_bytes(content)
        path.chmod(mode)
    return dest


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/snapconform/snaps`` (``~/.cache`` if unset; see snapconform.paths)."""
    return cache_root() / "snaps"


def build_snap(spec: FixtureSpec, cache_dir: Path | None = None) -> Path:
    """The .snap file for ``spec``, packed into ``cache_dir`` unless it is already there.

    Safe to call from several processes at once: each packs in a private temporary directory
    inside the cache dir and renames the result into place, so a reader never sees half a file.
    """
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    tree = snap_tree(spec)
    out = cache_dir / snap_file_name(spec, tree)
    if out.is_file():
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Same directory as `out`, so the final rename stays on one file system (atomic).
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        source = _write_files(tree, work / "tree")
        packed = pack_snap(source, work / out.name)
        packed.chmod(DATA_MODE)
        os.replace(packed, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
