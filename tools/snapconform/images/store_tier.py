"""The store tier's image: the golden recipe with the release's test-keys snapd installed.

The test-keys build (snapd_build.py) replaces the archive's snapd package (same version string
without the binNMU suffix, so it is held), and a drop-in points snapd at the store the harness
serves inside the host, on its loopback: ``SNAPPY_FORCE_API_URL=http://127.0.0.1:STORE_PORT``
and ``SNAPPY_TESTING=1``. Everything else is the golden recipe, so the two tiers differ only in
which snapd runs. The two binaries carry the same version: tell them apart by the keys
(``trusts_test_root``).
"""

from __future__ import annotations

from pathlib import Path

from snapconform.images.golden import ImageRecipe, SnapdOverride
from snapconform.images.snapd_build import SnapdBuild

STORE_PORT = 8190
STORE_URL = f"http://127.0.0.1:{STORE_PORT}"
FLAVOUR = "testkeys"
DROPIN_PATH = "etc/systemd/system/snapd.service.d/snapconform-store.conf"
DROPIN_TEXT = f"""\
[Service]
# snapconform's store tier: the store is served inside this host, on its loopback.
Environment=SNAPPY_FORCE_API_URL={STORE_URL}
Environment=SNAPPY_TESTING=1
"""

# The testrootorg root key's id (sha3-384 of its public key): compiled in only with the tag
# withtestkeys (asserts/systestkeys), so its presence marks a test-keys binary.
TEST_ROOT_KEY_ID = "hIedp1AvrWlcDI4uS_qjoFLzjKl5enu4G2FYJpgB3Pj-tUzGlTQBxMBsBmi-tnJR"
SNAPD_BINARY = "usr/lib/snapd/snapd"

# snapd= in a host URL: which snapd the host runs.
SNAPD_CHOICES = ("archive", FLAVOUR)


def store_recipe(release: str, mode: str, build: SnapdBuild) -> ImageRecipe:
    """The store tier's recipe for ``build`` (keyed by its source version and .deb hashes)."""
    if build.release != release:
        raise ValueError(f"a {build.release} snapd build cannot go into a {release} image")
    override = SnapdOverride(
        flavour=FLAVOUR,
        label=build.label,
        debs=build.debs,
        deb_sha256=build.deb_sha256,
        files=((DROPIN_PATH, DROPIN_TEXT),),
    )
    return ImageRecipe(release, mode, override)


def binary_trusts_test_root(binary: Path, chunk: int = 1 << 20) -> bool:
    """Whether the file ``binary`` holds the testrootorg root key id."""
    needle = TEST_ROOT_KEY_ID.encode()
    tail = b""
    with open(binary, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            window = tail + block
            if needle in window:
                return True
            tail = window[-(len(needle) - 1) :]
    return False


def trusts_test_root(tree: Path) -> bool:
    """Whether the snapd of the tree ``tree`` is a test-keys build (trusts testrootorg)."""
    return binary_trusts_test_root(Path(tree) / SNAPD_BINARY)
