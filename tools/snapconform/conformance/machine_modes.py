"""State-machine rules for confinement flags and `snap try`.

`ModesRules` is mixed into conformance.machine.SnapdMachine (it uses the machine's `do`, `snap`,
`installed`, `pick_instance`, `moved_epoch`, `recorder` and `name`). Its rules install or
refresh a generated file with `--devmode`, `--jailmode` or `--classic` (the containers have no
AppArmor: snapd forces devmode and refuses `--jailmode`; model/snapd_confinement.py), try the
snap's unpacked tree with `snap try DIR` (model/snapd_try.py; trying the same tree again is a
refresh to the next x revision), and edit the tried tree. Every rule counts a coverage label.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from snapconform.conformance.ops_confinement import InstallWithModes
from snapconform.conformance.ops_try import EditTried, TryDir
from snapconform.model import snapd as model
from snapconform.model.snapd_confinement import Modes

# One flag at a time, and the pair the CLI refuses (simplest first).
MODES = (
    Modes(devmode=True),
    Modes(classic=True),
    Modes(jailmode=True),
    Modes(devmode=True, jailmode=True),
)
NOTES = ("one", "two")


class ModesRules:
    """Rules on confinement flags and tried directories (see the module doc)."""

    name: str
    recorder: Any
    state: model.SnapdState
    do: Any
    snap: Any
    installed: Any
    moved_epoch: Any
    tried: model.SnapFile | None = None  # the file whose tree the last `snap try` tried

    @rule(version=st.sampled_from(("1.0", "2.0")), modes=st.sampled_from(MODES))
    def install_with_modes(self, version: str, modes: Modes) -> None:
        """An install or refresh of the snap itself (flags take no instance name here)."""
        found = self.installed(self.name)
        epoch = None if found is None else self.moved_epoch(self.name, "same", None)
        self.recorder.count(f"install {' '.join(modes.argv())}")
        self.do(InstallWithModes(self.snap(version, epoch, ()), modes))

    @rule(version=st.sampled_from(("1.0", "2.0")), again=st.booleans())
    def try_dir(self, version: str, again: bool) -> None:
        found = self.installed(self.name)
        epoch = None if found is None else self.moved_epoch(self.name, "same", None)
        snap = self.tried if again and self.tried is not None else self.snap(version, epoch, ())
        self.recorder.count("snap try (again)" if snap == self.tried else "snap try")
        self.do(TryDir(snap))
        instance = self.installed(self.name)
        if instance is not None and instance.trymode:
            self.tried = snap

    @precondition(lambda self: self.tried is not None)
    @rule(text=st.sampled_from(NOTES))
    def edit_tried(self, text: str) -> None:
        assert self.tried is not None
        self.recorder.count("edit the tried dir")
        self.do(EditTried(self.tried, text))
