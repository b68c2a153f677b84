"""Known divergences: where real snapd contradicts its own documents, recorded, never silenced.

When snapd is right and the model wrong, the model is fixed (README: "What real snapd taught the
model"). When snapd contradicts a document the model follows, the contradiction is recorded here
with the document's sentence and what snapd does instead. A step whose every mismatch such an
entry explains gets the verdict "known-divergence": scenario tests report it as an expected
failure naming the entry (listed by pytest's -ra), the state machine counts it as a coverage
label and drops the example (its model and snapd no longer share a state to compare).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownDivergence:
    key: str  # a short slug, shown in reports
    fields: str  # regular expression over a mismatch field with snap names as NAME
    document: str  # the sentence snapd contradicts, and where it stands
    observed: str  # what snapd does instead, and on which releases it was seen
    since: tuple[int, int] = (0, 0)  # snapd versions that show it: since <= version < until
    until: tuple[int, int] = (99, 0)
    # regular expression the observed value must match (snap names as NAME), so an entry
    # explains this contradiction only, not every mismatch of the same field
    shows: str = ".*"
    # Where a fault found it: "step", only on an interrupted step itself; "run", on a step of a
    # run in which some step was interrupted before or at it; "" anywhere. A fault's aftermath
    # (no hooks ran, a change ended Error) looks like many unrelated mismatches elsewhere.
    found_by_fault: str = ""

    def applies_to(self, snapd_version: tuple[int, int]) -> bool:
        """Whether snapd of this version is recorded as showing it."""
        return self.since <= snapd_version < self.until

    def explains(
        self,
        field: str,
        observed: str,
        snapd_version: tuple[int, int],
        faults: frozenset[str] = frozenset(),
    ) -> bool:
        """`faults`: "step" when this step was interrupted, "run" when this or an earlier step
        of its run was."""
        return (
            self.applies_to(snapd_version)
            and (not self.found_by_fault or self.found_by_fault in faults)
            and bool(re.fullmatch(self.fields, field))
            and bool(re.fullmatch(self.shows, observed, re.DOTALL))
        )

    def describe(self) -> str:
        return f"known divergence {self.key}: the document says {self.document}; {self.observed}"


KNOWN_DIVERGENCES: tuple[KnownDivergence, ...] = (
    KnownDivergence(
        key="parallel-instance-hook-sees-undone-revision",
        fields=r"error",
        shows=(
            r"cannot perform the following tasks: .*\(run hook \"[a-z-]+\": cat: can't open "
            r"'/snap/NAME/x\d+/snapconform/hooks/[a-z-]+\.stderr': No such file or directory\)"
        ),
        document=(
            'facts §7 "post-refresh runs in the NEW revision" (its $SNAP is that revision\'s files)'
        ),
        observed=(
            "for a parallel instance (NAME_KEY), when a refresh to xN fails and is undone and a "
            "later refresh reuses xN with another file, that refresh's hooks run with "
            "$SNAP=/snap/NAME/xN not showing the new file's contents (the hook runs, but its own "
            "data files are missing); a plain snap is fine. Seen on 2.57.6 and 2.68.3 in "
            "privileged and user-namespace containers, not on 2.77.1; the fixing release is not "
            "bisected (suites/conformance/test_parallel_instances.py shows it)"
        ),
        until=(2, 77),
    ),
    KnownDivergence(
        key="seed000-8-one-refresh-takes-both-hops",
        # What differs when the refresh is predicted as the sentence says, in the scenario's own
        # revisions (1000 on beta, 1001 = 1* and 1002 = 1 in candidate), so that no other
        # mismatch of these fields is taken for this one.
        fields=r"NAME\.(sequence|current|data_dirs)|NAME\[1001\]\.status|notice",
        shows=r".*\b1002\b.*|installed",
        document=(
            'seed 000 #8: "If a user is on beta (with epoch: 0) and tries to do snap refresh '
            "--candidate to something that has epoch: 1 and there is an epoch: 1* somewhere in "
            "the channel history to bounce through, the refresh will end up on that revision "
            "(with a warning about the candidate being closed), and then a later auto-refresh "
            '(or a manual snap refresh) will get them to the wanted revision"'
        ),
        observed=(
            "the one `snap refresh --candidate` steps through the 1* and goes on to candidate's "
            "epoch-1 tip (check-rerefresh asks again after the epoch changed), tracking "
            "latest/candidate, and prints no warning (candidate is open: the effective channel "
            "is candidate at both hops); the next refresh has nothing to do. Seen on 2.57.6 "
            "(suites/conformance/test_store_seed000_candidate_bridge.py); the re-refresh is in "
            "snapd since 2.38 (the thread predates it: 'What isn't released is the stepping of "
            "an upgrade through epochs in a single refresh')"
        ),
        since=(2, 38),
    ),
    KnownDivergence(
        key="seed000-4-auto-refresh-retries",
        # No step compares an auto-refresh (none can be provoked in a test's time offline, see
        # below), so no mismatch carries this field: the entry records the run by hand.
        fields=r"auto-refresh\.hooks",
        document=(
            'seed 000 #4: "I expect a failure in that hook will actually mark the new snap '
            "revision as bad for that system and the upgrade won't be attempted again "
            "automatically until you release a new rev (although I think they can manually "
            'refresh it)"'
        ),
        observed=(
            "2.57 remembers nothing of a refresh undone by a failing post-refresh: the next "
            "auto-refresh tries the same revision again (its post-refresh runs and fails, the "
            "change is undone), as do `snap refresh` and `snap refresh NAME` (those are manual, "
            "as the sentence allows). Seen on 2.57.6: the manual ones in "
            "suites/conformance/test_store_seed000_failed_refresh.py, the auto-refresh once by "
            "hand (refresh.hold unset, refresh.timer=0:00-24:00/1440, snapd restarted: an "
            "auto-refresh change came 20 min later, kind auto-refresh, status Error, R2's "
            "post-refresh failed again). It cannot be provoked in a test's time offline: "
            "devicestate canAutoRefresh needs a serial (requested from api.snapcraft.io, not "
            "the store URL, and signed by the model's brand) or 3 become-operational attempts, "
            "counted in memory from snapd's start with 5- then 10-min backoffs on the 5-min "
            "ensure ticks (15-20 min), and an unsynced NTP clock waits 10 min. From 2.67 "
            "(autorefresh.go, backoff commit dc01a39243) a failed auto-refresh is recorded and "
            "later auto-refreshes skip that revision for 8 h and more, which is the sentence; "
            "not run (the store tier is bookworm's only here: the mirror lacks the source "
            "packages of trixie's and sid's snapd)"
        ),
        until=(2, 67),
    ),
    KnownDivergence(
        key="rerefresh-leaves-trash-remove-fails",
        # the full remove's result, the half-removed snap still listed, and the stray revision
        # dir that kept /var/snap/NAME (trash is not among the data dirs)
        fields=r"outcome|NAME\.installed|NAME\.data_dirs",
        shows=(
            r"exit 1: .*Remove data for snap \"NAME\" \(x?\d+\) \(failed to remove snap \"NAME\" "
            r"base directory: remove (/var/snap|/root/snap|/home/[^/]+/snap)/NAME: directory not "
            r"empty(\s+dir contents: \[[^\]]*\])?\).*|True"
            r"|frozenset\(\{'x?\d+'\}\)"
        ),
        document=(
            'reference/snapd-behaviour.md §5: "A full remove runs the remove hook, saves an '
            'automatic snapshot (not with `--purge`), then discards every revision and `common`"'
        ),
        observed=(
            "after a refresh change that moved onto a revision R already present (R's own data "
            "trashed as /var/snap/NAME/R.old) and then, re-refreshing, on to another revision, "
            "R.old is never cleared (handlers.go cleanupCopySnapData clears the trash of the "
            "snap's current revision only, the last hop's; unchanged on master). A full remove "
            "(with or without --purge) then fails at 'Remove data' with 'failed to remove snap "
            '"NAME" base directory: remove /var/snap/NAME: directory not empty\' and leaves the '
            "snap half removed: older revisions discarded, the last one disabled with its data "
            "gone; every retry fails alike until R.old is deleted by hand. Seen on 2.57.6 "
            "(suites/conformance/test_store_rerefresh_trash.py). The same when an undo left a "
            "stray revision dir (a failing refresh killed inside copy-snap-data: "
            "model/faults.py copy_rerun_leaves_target; suites/conformance/test_faults.py "
            "test_a_full_remove_after_a_stray_copy_fails, 2.57.6; on 2.68.3 a stray "
            "~root/snap/NAME/x2 fails it with 'remove /root/snap/NAME: directory not empty', "
            "since 2.62 removes the users' base dirs too; 2.77.1 adds 'dir contents: [x2]')"
        ),
    ),
    KnownDivergence(
        key="killed-profile-compile-undoes-install",
        found_by_fault="run",  # later steps see it too
        # what the undone first install leaves (root's ~/snap/NAME holding only `current`); or,
        # when a failing hook was predicted, the hook that failed first for want of its profile
        # (none of the hooks ran, none read configuration)
        fields=r"NAME\.user_data\[root\]|error|hooks|config_reads",
        shows=(
            r"\(\(\), None, 'x\d+'\)|\(\)"
            # a refresh whose first hook failed so: root's `current` link not moved to the new
            # revision (the model has the hooks run there as root)
            r"|\(\(\('x\d+', frozenset\(\)\)(, \('x\d+', frozenset\(\)\))*,?\), "
            r"frozenset\(\), 'x\d+'\)"
            r"|.*cannot stat /var/lib/snapd/seccomp/bpf/snap\.NAME\S*\.bin: No such file or "
            r"direc.*"
        ),
        document=(
            'reference/snapd-behaviour.md §8: "A failed refresh is undone: the new '
            "revision's data dirs are deleted, the old revision is current again with its data "
            'as it was" (and an '
            "undone first install leaves nothing of the snap; issue 10: a change interrupted at "
            "any point is resumed or undone)"
        ),
        observed=(
            "snapd SIGKILLed while setup-profiles of a first install compiles the seccomp "
            "profiles (the kill point `copy-snap-data Doing`, seen Done: snap-seccomp processes "
            "killed with it): after the restart setup-profiles runs again and compiles nothing, "
            "since interfaces/seccomp/backend.go Setup compiles only the .src files "
            "EnsureDirState changed (2.57.6 and 2.77 alike), so a hook whose .bin was not written "
            "waits 120 s in snap-confine and fails with 'cannot stat "
            "/var/lib/snapd/seccomp/bpf/snap.NAME.hook.install.bin: No such file or directory'; "
            "the install is undone, but root's ~/snap/NAME/current symlink stays behind. When "
            "the install hook's profile was compiled and another's was not, the install "
            "completes and that hook never runs (a remove hook fails in silence); with a "
            "failing hook predicted, the install hook fails first. Seen on 2.57.6 (3 direct "
            "runs in 3, and the bookworm fault soak) and on 2.77.1 (the sid fault soak: the "
            "install undone). Also at a refresh (the rollback test of test_faults.py, 2.57.6): a "
            "kill in an undo's setup-profiles leaves x1's pre-refresh profile uncompiled and "
            "the next refresh fails at pre-refresh for want of its .bin"
        ),
    ),
    KnownDivergence(
        key="killed-copy-leaves-new-revision-data",
        found_by_fault="run",  # later steps see the stray dirs too
        # Named by the judge of an interrupted step only, when snapd matched the model's twin
        # outcome that keeps the data (model/faults.py copy_rerun_leaves_target, Allowed.
        # anomaly); the model then follows the state it leaves. No mismatch pattern: a broad
        # one would hide other data-dir mismatches of a run with faults.
        fields=r"(?!)",
        document=(
            'reference/snapd-behaviour.md §8: "A failed refresh is undone: the new '
            "revision's data dirs are deleted, the old revision is current again with its data "
            'as it was" (issue 10: a change interrupted at any point is resumed or undone)'
        ),
        observed=(
            "snapd SIGKILLed while copy-snap-data of a refresh copies (whole or in part): after "
            "the restart the copy runs again, trashing the first copy as x2.old "
            "(backend/snapdata.go copySnapDataDirectory), and when the refresh is then undone "
            "UndoCopySnapData removes x2 and puts the trash back: /var/snap/NAME/x2 and the "
            "users' ~/snap/NAME/x2 stay beside the sequence with the old revision's data, in "
            "snapd's copy order (homes, root's, then SNAP_DATA; a kill between them leaves a "
            "part). A later failing refresh to x2 puts them back again, a refresh that works "
            "takes them over, a full remove fails on them (rerefresh-leaves-trash-remove-"
            "fails). Found by CI at the rollback test's kill at task 6 (landing in copy-snap-"
            "data); reproduced with a 768 MiB file in SNAP_DATA on 2.57.6, 2.68.3 and 2.77.1 "
            "(suites/conformance/test_faults.py)"
        ),
    ),
    KnownDivergence(
        key="killed-remove-breaks-next-install",
        found_by_fault="run",
        # the next install of the removed snap: refused at its mount, nothing installed
        fields=r"outcome|NAME\.installed",
        shows=(
            r"exit 1: cannot perform the following tasks: - Mount snap \"NAME\" \(unset\) "
            r"\(cannot proceed, expected snap \"NAME\" revision x\d+ to be mounted but is not\)"
            r"|False"
        ),
        since=(2, 77),
        document=(
            'reference/snapd-behaviour.md §4: "Numbers are reused: after a full remove the next '
            'install is x1 again" (and issue 10: a change interrupted at any point is resumed or '
            "undone, losing nothing)"
        ),
        observed=(
            "found once by the fault soak on sid (2.77.1): an install of NAME_k1 killed at "
            "link-snap (undone by its failing configure hook), then a full remove of NAME killed "
            "250 ms into discard-snap of x1 (the change ended Done, nothing of NAME left), then "
            "`snap install --dangerous` of NAME failed at 'Mount snap' with 'cannot proceed, "
            'expected snap "NAME" revision x1 to be mounted but is not\' and installed nothing. '
            "A remove killed at discard-snap alone did not show it (3 tries on 2.77.1). History: "
            "suites/conformance/faults_histories/sid-2.77.1-killed-remove-then-install.json "
            "(python -m snapconform replay FILE --host nspawn://sid)"
        ),
    ),
    KnownDivergence(
        key="killed-link-snap-undone-install-listed",
        found_by_fault="run",  # later steps see it too
        # the undone first install still listed: installed, its x1 data dir, root's user dir
        fields=r"NAME(_\w+)?\.(installed|data_dirs|user_data\[root\])",
        shows=(
            r"True|frozenset\(\{'(common|x\d+)', '(common|x\d+)'\}\)"
            r"|\(\(\('x\d+', frozenset\(.*\)\),\), frozenset\(\), 'x\d+'\)"
        ),
        since=(2, 77),
        document=(
            'reference/snapd-behaviour.md §8: "A failed refresh is undone: the new '
            "revision's data dirs are deleted, the old revision is current again with its data "
            'as it was" (an undone first install leaves nothing; model: fresh_install, '
            "backend/copydata.go UndoCopySnapData)"
        ),
        observed=(
            "found by the fault soak on sid (2.77.1), twice: a first install of a parallel "
            "instance NAME_k1 whose configure hook fails, snapd SIGKILLed while link-snap (and "
            "2.77's process-delayed-security-backend-effects) ran: after the restart the change "
            "ends Error with every task Undone, yet snapd still lists NAME_k1 (REST: installed, "
            "revision x1, no active revision, disabled), /var/snap/NAME_k1/x1 keeps the "
            "hook's marker and root's ~/snap/NAME_k1 stays. In the first run the same step "
            "ended clean and the next install of NAME then failed at 'Mount snap' "
            "(killed-remove-breaks-next-install). History: suites/conformance/faults_histories/"
            "sid-2.77.1-killed-link-snap-undone-install-listed.json (step 11)"
        ),
    ),
    KnownDivergence(
        key="power-cut-remove-ends-error",
        found_by_fault="step",
        # the remove happened (nothing of NAME_k1 left, as the model says) but the change errs
        fields=r"change\.status|outcome",
        shows=r"Error|exit 1: cannot perform the following tasks: .*not installed anymore.*",
        since=(2, 77),
        document=(
            'reference/snapd-behaviour.md §8: "A full remove runs the remove hook, saves an '
            "automatic snapshot (not with `--purge`), then discards every revision and "
            '`common`" (and issue 10: a change interrupted at any point is resumed or undone)'
        ),
        observed=(
            "found by the fault soak on sid (2.77.1): a full remove --purge of NAME_k1 (two "
            "revisions) with the host's power cut 250 ms into a discard-snap: after the boot "
            "the snap is gone as predicted, but the change ends Error: 'Stop snap services "
            "(snap has no current revision)', 'Make snap unavailable to the system (internal "
            "error: snap \"NAME_k1\" not installed anymore)', 'Remove security profile ... "
            "(cannot find installed snap ...)'; snap remove would exit 1. History: "
            "suites/conformance/faults_histories/sid-2.77.1-power-cut-remove-ends-error.json"
        ),
    ),
)


def explain(
    mismatches: Sequence[tuple[str, str]],
    snapd_version: tuple[int, int],
    known: Sequence[KnownDivergence] = KNOWN_DIVERGENCES,
    *,
    faults: frozenset[str] = frozenset(),
) -> tuple[KnownDivergence, ...]:
    """The entries that explain every (field, observed) mismatch (snap names as NAME), else ();
    `faults` as KnownDivergence.explains takes it."""
    found: list[KnownDivergence] = []
    for field, observed in mismatches:
        entry = next((k for k in known if k.explains(field, observed, snapd_version, faults)), None)
        if entry is None:
            return ()
        if entry not in found:
            found.append(entry)
    return tuple(found)
