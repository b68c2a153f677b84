"""`python -m snapconform hosts check URL`: start a host, ask snapd its version, stop it.

For a store-tier host (one whose snapd uses a store we serve, e.g.
``nspawn://bookworm?snapd=testkeys``) it also checks that the running snapd is pointed at that
store and trusts the test root (its binary holds the testrootorg key id).

Exit codes: 0 the host works; 2 a bad URL or a host that cannot be made here (one line on
stderr); 1 the host started but then failed (a host fault).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from snapconform.harness.shell import CommandTimeout, Shell
from snapconform.hosts.base import Host, HostError, HostUnavailable, open_host
from snapconform.images.store_tier import TEST_ROOT_KEY_ID

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
