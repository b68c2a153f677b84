"""`python -m snapconform hosts check URL`: start a host, ask snapd its version, stop it.
`hosts create lxd://NAME [--release R]` makes a seeded LXD instance with its pristine snapshot
(starting an LXD daemon when none runs, see snapconform.hosts.lxd_daemon); `hosts delete
lxd://NAME` removes one it made, with its store tier (and, with the last, the daemon it
started). ``hosts create 'lxd://NAME?snapd=testkeys'`` (or ``--snapd testkeys``) makes the store
tier of lxd://NAME, the instance NAME-store with the release's test-keys snapd (the store
scenarios also make it on first use when NAME is one `hosts create` made).

For a store-tier host (one whose snapd uses a store we serve, e.g.
``nspawn://bookworm?snapd=testkeys``) it also checks that the running snapd is pointed at that
store and trusts the test root (its binary holds the testrootorg key id).

Exit codes: 0 the host works (was made, was deleted); 2 a bad URL, bad input or a host that
cannot be made here (one line on stderr); 1 the host started but then failed (a host fault).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from snapconform.harness.shell import CommandTimeout, Shell
from snapconform.hosts.base import Host, HostError, HostSpec, HostUnavailable, open_host
from snapconform.hosts.lxd import instance_name
from snapconform.hosts.lxd_instance import store_tier_name
from snapconform.hosts.lxd_provision import (
    BadRequest,
    check_request,
    create_instance,
    delete_instance,
)
from snapconform.images.store_tier import FLAVOUR, SNAPD_CHOICES, TEST_ROOT_KEY_ID

EXIT_HOST_FAULT = 1
EXIT_UNAVAILABLE = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("hosts", help="check the hosts snapconform can drive")
    actions = parser.add_subparsers(dest="hosts_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="start a host, run `snap version` through the framed shell, stop it"
    )
    check.add_argument("url", help="host URL: nspawn://bookworm, local://, ssh://root@vm:22, ...")
    check.add_argument("--identity", type=Path, help="ssh:// only: private key file")
    check.add_argument("--known-hosts", type=Path, help="ssh:// only: known_hosts file")
    check.add_argument(
        "--proxy-command", help="ssh:// only: an ssh ProxyCommand to reach the host through"
    )
    check.add_argument(
        "--timeout", type=float, default=60.0, help="seconds for `snap version` (default 60)"
    )
    check.add_argument("--transcript", type=Path, help="append the shell transcript to this file")
    check.set_defaults(func=check_host)

    create = actions.add_parser(
        "create", help="make a seeded lxd://NAME instance (image, profile, snapshot, CPU pin)"
    )
    create.add_argument("url", help="lxd://NAME")
    create.add_argument(
        "--release", default="bookworm", help="Debian release of the image (default bookworm)"
    )
    create.add_argument(
        "--snapd",
        choices=SNAPD_CHOICES,
        default=None,
        help="testkeys: make the store tier of lxd://NAME (the instance NAME-store), as the URL "
        "lxd://NAME?snapd=testkeys says",
    )
    create.add_argument("--cache-dir", type=Path, default=None, help="image cache directory")
    create.set_defaults(func=create_host)
    delete = actions.add_parser(
        "delete", help="delete an lxd://NAME instance that `hosts create` made"
    )
    delete.add_argument(
        "url", help="lxd://NAME (with its store tier), or lxd://NAME?snapd=testkeys (that alone)"
    )
    delete.set_defaults(func=delete_host)


def _fail(code: int, message: str) -> int:
    print(f"snapconform hosts: {' '.join(message.split())}", file=sys.stderr)
    return code


def check_host(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.identity is not None:
        options["identity"] = args.identity
    if args.known_hosts is not None:
        options["known_hosts"] = args.known_hosts
    if args.proxy_command is not None:
        options["proxy_command"] = args.proxy_command
    try:
        host = open_host(args.url, **options)
    except (ValueError, TypeError) as exc:
        return _fail(EXIT_UNAVAILABLE, str(exc))
    try:
        host.start()
    except HostUnavailable as exc:
        host.stop()
        return _fail(EXIT_UNAVAILABLE, str(exc))
    except HostError as exc:
        host.stop()
        return _fail(EXIT_UNAVAILABLE, f"{args.url}: could not start: {exc}")
    try:
        with Shell(host, transcript=args.transcript) as shell:
            result = shell.run("snap version </dev/null 2>&1", timeout=args.timeout)
            store_problem = _check_store_tier(host, shell, args.timeout)
        print(result.output)
        print()
        for key, value in host.describe().items():
            print(f"{key}: {value}")
        if host.store_url is not None:
            print(f"store_url: {host.store_url}")
        if result.exit_code != 0:
            return _fail(EXIT_HOST_FAULT, f"`snap version` exited {result.exit_code}")
        if store_problem:
            return _fail(EXIT_HOST_FAULT, store_problem)
        return 0
    except (HostError, CommandTimeout) as exc:
        return _fail(EXIT_HOST_FAULT, str(exc))
    finally:
        host.stop()


def _check_store_tier(host: Host, shell: Shell, timeout: float) -> str | None:
    """What is wrong with a store-tier host's snapd, or None (and None for other hosts)."""
    if host.store_url is None:
        return None
    key = shlex.quote(TEST_ROOT_KEY_ID)
    trusts = shell.run(f"grep -q -a -F {key} /usr/lib/snapd/snapd", timeout=timeout)
    if trusts.exit_code != 0:
        return "its snapd is not a test-keys build (no testrootorg key in /usr/lib/snapd/snapd)"
    environment = shell.run("systemctl show snapd -p Environment", timeout=timeout)
    wanted = f"SNAPPY_FORCE_API_URL={host.store_url}"
    if wanted not in environment.output.strip().removeprefix("Environment=").split():
        return f"snapd.service lacks {wanted} (it has: {environment.output.strip()})"
    return None


def _lxd_instance_of(url: str, snapd: str | None = None) -> tuple[str, str, str | None]:
    """(instance, snapd flavour, the instance it is the store tier of) for an lxd:// URL and a
    --snapd choice (ValueError, one line, for anything else)."""
    spec = HostSpec.parse(url)
    if spec.scheme != "lxd":
        raise ValueError(
            f"{url!r}: only lxd:// hosts are created and deleted here "
            "(nspawn:// hosts are made on demand, other hosts are yours)"
        )
    unknown = sorted(set(spec.query) - {"snapd"})
    if unknown:
        raise ValueError(
            f"host URL {url!r}: lxd:// takes only snapd= in its query, not {', '.join(unknown)}"
        )
    in_url = spec.query.get("snapd")
    if in_url is not None and in_url not in SNAPD_CHOICES:
        raise ValueError(f"host URL {url!r}: snapd= takes {' or '.join(SNAPD_CHOICES)}")
    if in_url is not None and snapd is not None and in_url != snapd:
        raise ValueError(f"host URL {url!r} says snapd={in_url}, --snapd says {snapd}")
    flavour = in_url or snapd or "archive"
    name = instance_name(spec)
    if flavour == FLAVOUR:
        return store_tier_name(name), flavour, name
    return name, flavour, None


def _say(line: str) -> None:
    print(f"snapconform hosts: {line}", file=sys.stderr, flush=True)


def create_host(args: argparse.Namespace) -> int:
    try:
        name, flavour, served = _lxd_instance_of(args.url, args.snapd)
        check_request(name, args.release)
        report = create_instance(
            name, args.release, _say, args.cache_dir, snapd=flavour, store_tier_of=served
        )
    except (ValueError, BadRequest, HostUnavailable) as exc:
        return _fail(EXIT_UNAVAILABLE, str(exc))
    except HostError as exc:
        return _fail(EXIT_HOST_FAULT, f"{args.url}: could not be made: {exc}")
    steps = ", ".join(f"{what} {took:.1f} s" for what, took in report.seconds.items())
    print(f"{args.url}: created in {report.total:.1f} s ({steps})")
    print(f"instance: {report.name}")
    print(f"release: {report.release}")
    print(f"image: {report.image}")
    print(f"snapd: {report.snapd_version} ({report.snapd_build})")
    print(f"cpu: {report.cpu}")
    print(f"daemon: {report.daemon}")
    return 0


def delete_host(args: argparse.Namespace) -> int:
    try:
        name, _flavour, _served = _lxd_instance_of(args.url)
        actions = delete_instance(name, lambda line: print(line))
    except (ValueError, BadRequest, HostUnavailable) as exc:
        return _fail(EXIT_UNAVAILABLE, str(exc))
    except HostError as exc:
        return _fail(EXIT_HOST_FAULT, f"{args.url}: could not be deleted: {exc}")
    return 0 if actions else 1
