"""The store's choice of revision for a channel and an installed epoch.

The store is not public (reference/snapd-behaviour.md §3). What the documents fix:
- a closed channel (nothing released to it, or closed by the publisher) follows the next less
  risky open one (snapcraft docs: "Closed channels fall back to the next less risky channel");
- among the revisions whose epoch can read the installed epoch, the greatest epoch wins, then the
  most recent; revisions below a channel's tip count;
- new users always get the latest epoch (seed 004);
- after a refresh that changed the epoch snapd asks again (re-refresh, snapd 2.38+).
Everything else is a named policy in `Policies`, each with the sentence (or its absence) behind
it; suites/model/test_store.py shows what each alternative would change.

A `Store` is its channel log: `log` holds every publisher event in order (`Release`,
`ChannelClosed`, `Unreleased`, each with `kind`, `channel` and `sequence`), so replaying the log
through `release` / `close` / `unrelease` gives back an equal `Store` (the served store relies on
that). `releases` is the log's releases, withdrawn ones included; `history(channel)` is what a
channel counts now.

Publisher events beyond releasing:
- `close(channel)`: the channel closes and then follows the next less risky open channel; a later
  release reopens it. Whether releases from before the close count again after a reopen is the
  policy `Policies.reopen` (no document says).
- `unrelease(channel)`: the channel's tip goes back to what it held before its last release; the
  withdrawn release no longer counts in that channel (fixed rule: snapcraft's "unrelease" removes
  a revision from a channel, so it is no longer in the channel's history either). A channel with
  nothing left is closed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from snapconform.model.epoch import Epoch

__all__ = [
    "DEFAULT_RISKS",
    "Answer",
    "ChannelClosed",
    "EpochOrder",
    "FreshInstall",
    "History",
    "Policies",
    "RefreshPath",
    "Release",
    "Reopen",
    "Store",
    "StoreError",
    "TieBreak",
    "Unreadable",
    "Unreleased",
]

DEFAULT_RISKS: tuple[str, ...] = ("stable", "candidate", "beta", "edge")
DEFAULT_TRACK = "latest"
MAX_HOPS = 32  # re-refresh guard: odd structured epochs could otherwise bounce forever


class StoreError(ValueError):
    """A release or question the store would not accept (unknown channel, epoch changed)."""


class EpochOrder(enum.Enum):
    """How 'the greatest epoch' is decided among readable revisions."""

    #: By the highest epoch the revision writes (the epoch the user's data ends up in); N and N*
    #: rank equal, so the more recent wins. 004's correction (step 6: user 3 gets R6E1*, not R3E1)
    #: needs this.
    WRITTEN = "written"
    #: As WRITTEN, but a bridge N* ranks below a plain N. Gives 004's uncorrected step 6 (user 3
    #: held on R3E1 until step 7).
    BRIDGES_LAST = "bridges-last"
    #: Epochs only filter (can-read); among readable revisions the most recent wins.
    IGNORED = "ignored"

    def key(self, epoch: Epoch) -> tuple[int, ...]:
        if self is EpochOrder.WRITTEN:
            return (max(epoch.write),)
        if self is EpochOrder.BRIDGES_LAST:
            return (max(epoch.write), min(epoch.read))
        return ()


class TieBreak(enum.Enum):
    """Among equally great epochs, which revision is 'the most recent'."""

    #: The one released to the channel last (a re-release, e.g. a rollback, makes it recent).
    RELEASE_ORDER = "release-order"
    #: The highest revision number.
    REVISION_NUMBER = "revision-number"


class History(enum.Enum):
    """Which of a channel's releases are candidates."""

    #: Every revision ever released to the channel, not only its tip.
    ALL_RELEASES = "all-releases"
    #: Only the channel's current tip.
    TIP_ONLY = "tip-only"


class Unreadable(enum.Enum):
    """What a refresh does when the tracked (open) channel has nothing that can read the data."""

    #: Look in the next less risky open channels, in order, and take the first readable answer.
    LESS_RISKY = "less-risky"
    #: Offer nothing: the user stays where they are.
    STAY = "stay"
    #: Always pool the tracked channel with every less risky one and take the best overall.
    POOL = "pool"


class FreshInstall(enum.Enum):
    """What a new user (no installed epoch) gets."""

    #: The greatest epoch released to the channel, then the most recent of it.
    LATEST_EPOCH = "latest-epoch"
    #: Whatever is at the channel's tip.
    CHANNEL_TIP = "channel-tip"


class Reopen(enum.Enum):
    """After a channel was closed and a release reopened it, which earlier releases count."""

    #: A close ends the channel's history: only releases after the reopening count. Closing is
    #: the publisher saying "nothing in this channel any more" (snapcraft's close empties it).
    FRESH = "fresh"
    #: Releases from before the close count again once the channel is reopened (the store keeps
    #: a channel's release history; "revisions below a channel's tip count").
    KEEP_HISTORY = "keep-history"


@dataclass(frozen=True)
class Policies:
    """Every choice the documents leave open, in one place, with the document behind it.

    epoch_order -- facts §3: "the greatest epoch wins"; no document says how N* compares with N.
        The 004 comments' correction of step 6 (user 3 is given R6E1*, not held on R3E1) only
        comes out if they rank equal: WRITTEN.
    tie_break -- facts §3: "then the most recent". Read as most recently released to the channel
        (a channel is a release log); no document mentions revision numbers. 004 cannot tell the
        two apart (its revisions grow with its steps).
    history -- facts §3: "revisions below a channel's tip count once epochs exist"; seed 000 #8:
        an epoch 1* "somewhere in the channel history to bounce through".
    unreadable -- no sentence; 004's table implies it: at step 4 user 2, tracking candidate whose
        only release R3E1 cannot read epoch 0, gets stable's R4E0; at step 5 user 3, with a
        readable R3E1 in candidate, is not given stable's newer R5E1. Hence LESS_RISKY, only
        when nothing in the tracked channel is readable.
    re_refresh -- facts §2: after a refresh that changed the epoch snapd asks again (since 2.38),
        so one `snap refresh` steps 0 -> 1* -> 1. Seed 000 #8 predates it ("What isn't released
        is the stepping of an upgrade through epochs in a single refresh").
    fresh_install -- 004: "new users who always get the latest epoch with a fresh installation".
    reopen -- no sentence: the snapcraft docs say a closed channel follows the next less risky
        one, nothing about a channel released to again. FRESH: closing empties the channel, so
        its history starts again at the reopening release.
    """

    epoch_order: EpochOrder = EpochOrder.WRITTEN
    tie_break: TieBreak = TieBreak.RELEASE_ORDER
    history: History = History.ALL_RELEASES
    unreadable: Unreadable = Unreadable.LESS_RISKY
    re_refresh: bool = True
    fresh_install: FreshInstall = FreshInstall.LATEST_EPOCH
    reopen: Reopen = Reopen.FRESH


@dataclass(frozen=True)
class Release:
    """One release of a revision into a channel; `sequence` orders all events in the store."""

    kind: ClassVar[str] = "release"
    channel: str
    revision: int
    epoch: Epoch
    sequence: int


@dataclass(frozen=True)
class ChannelClosed:
    """The publisher closed `channel` (snapcraft close)."""

    kind: ClassVar[str] = "close"
    channel: str
    sequence: int


@dataclass(frozen=True)
class Unreleased:
    """The publisher withdrew `channel`'s last release (the one with sequence `withdrawn`)."""

    kind: ClassVar[str] = "unrelease"
    channel: str
    sequence: int
    withdrawn: int
    revision: int  # the withdrawn release's revision, for messages


LogEntry = Release | ChannelClosed | Unreleased


@dataclass(frozen=True)
class Answer:
    """The store's answer: the revision to have, its epoch, the channel it came from, and why.

    `revision` is None when the store has nothing to offer.
    """

    revision: int | None
    epoch: Epoch | None
    channel: str | None
    why: str

    @property
    def found(self) -> bool:
        return self.revision is not None


@dataclass(frozen=True)
class RefreshPath:
    """A refresh as snapd performs it: each store answer it acted on, in order.

    `hops` holds the answers that moved the snap; empty when the first answer kept it where it
    was (then `final` is that answer).
    """

    hops: tuple[Answer, ...]
    final: Answer

    @property
    def why(self) -> str:
        if len(self.hops) <= 1:
            return self.final.why
        # Still one sentence: each hop's reason, joined by what made snapd ask again.
        return "; then, the epoch having changed, snapd asked again: ".join(
            hop.why for hop in self.hops
        )


def _data(epoch: Epoch) -> str:
    """The installed data, as the can-read rule sees it (the installed revision's write list)."""
    if len(epoch.write) == 1:
        return f"epoch {epoch.write[0]}"
    return "epochs " + ", ".join(map(str, epoch.write))


def _named(release: Release) -> str:
    return f"{release.channel}'s R{release.revision} (epoch {release.epoch})"


@dataclass(frozen=True)
class Store:
    """An immutable store: channels (least risky first) and the log of events into them."""

    risks: tuple[str, ...] = DEFAULT_RISKS
    log: tuple[LogEntry, ...] = ()
    policies: Policies = field(default_factory=Policies)

    def __post_init__(self) -> None:
        if not self.risks or len(set(self.risks)) != len(self.risks):
            raise StoreError(f"risks must be distinct and not empty, got {list(self.risks)}")
        for risk in self.risks:
            if not risk or "/" in risk:
                raise StoreError(f"a risk is a plain name, not {risk!r}")

    # -- channels ------------------------------------------------------------------------------

    def channel(self, name: str) -> str:
        """The canonical name of a channel: `risk` or `track/risk` (`latest/` is dropped)."""
        track, _, risk = name.rpartition("/")
        if risk not in self.risks or (track == "" and "/" in name) or "/" in track:
            raise StoreError(
                f"unknown channel {name!r} (risks, least risky first: {', '.join(self.risks)})"
            )
        return risk if track in ("", DEFAULT_TRACK) else f"{track}/{risk}"

    def less_risky(self, name: str) -> tuple[str, ...]:
        """The channels of the same track less risky than `name`, nearest first."""
        channel = self.channel(name)
        track, _, risk = channel.rpartition("/")
        index = self.risks.index(risk)
        prefix = f"{track}/" if track else ""
        return tuple(prefix + r for r in reversed(self.risks[:index]))

    @property
    def releases(self) -> tuple[Release, ...]:
        """Every release ever made, in order (withdrawn ones and closed channels' included)."""
        return tuple(entry for entry in self.log if isinstance(entry, Release))

    def _live(self, channel: str) -> tuple[list[Release], list[Release]]:
        """(releases before the channel's last close, releases since), withdrawn ones left out."""
        withdrawn = {e.withdrawn for e in self.log if isinstance(e, Unreleased)}
        before: list[Release] = []
        since: list[Release] = []
        for entry in self.log:
            if entry.channel != channel:
                continue
            if isinstance(entry, ChannelClosed):
                before += since
                since = []
            elif isinstance(entry, Release) and entry.sequence not in withdrawn:
                since.append(entry)
        return before, since

    def history(self, name: str) -> tuple[Release, ...]:
        """The releases the channel counts now, oldest first (empty when it is closed).

        After a close only releases since the reopening count, unless `Policies.reopen` is
        KEEP_HISTORY; withdrawn (unreleased) releases never count.
        """
        before, since = self._live(self.channel(name))
        if not since:
            return ()
        if self.policies.reopen is Reopen.KEEP_HISTORY:
            return (*before, *since)
        return tuple(since)

    def tip(self, name: str) -> Release | None:
        history = self.history(name)
        return history[-1] if history else None

    def is_open(self, name: str) -> bool:
        return bool(self.history(name))

    def follows(self, name: str) -> str | None:
        """The channel that serves `name`: itself when open, else the next less risky open one."""
        for channel in (self.channel(name), *self.less_risky(name)):
            if self.is_open(channel):
                return channel
        return None

    def epoch_of(self, revision: int) -> Epoch | None:
        for release in self.releases:
            if release.revision == revision:
                return release.epoch
        return None

    # -- releasing -----------------------------------------------------------------------------

    def release(self, channel: str, revision: int, epoch: Epoch) -> Store:
        """A new store with `revision` released to `channel` (again, for a promotion)."""
        known = self.epoch_of(revision)
        if known is not None and known != epoch:
            raise StoreError(f"revision {revision} has epoch {known}, not {epoch}")
        entry = Release(self.channel(channel), revision, epoch, len(self.log) + 1)
        return replace(self, log=(*self.log, entry))

    def close(self, channel: str) -> Store:
        """A new store with `channel` closed: it follows the next less risky open channel until
        a release reopens it (what counts then: `Policies.reopen`)."""
        name = self.channel(channel)
        if not self.is_open(name):
            raise StoreError(f"channel {name} is already closed")
        return replace(self, log=(*self.log, ChannelClosed(name, len(self.log) + 1)))

    def unrelease(self, channel: str) -> Store:
        """A new store whose `channel` tip is what it held before its last release; the
        withdrawn release no longer counts there, and a channel left with nothing is closed."""
        name = self.channel(channel)
        _, since = self._live(name)
        if not since:
            raise StoreError(f"channel {name} is closed: there is nothing to unrelease")
        last = since[-1]
        entry = Unreleased(name, len(self.log) + 1, last.sequence, last.revision)
        return replace(self, log=(*self.log, entry))

    # -- choosing ------------------------------------------------------------------------------

    def candidates(self, name: str) -> tuple[Release, ...]:
        """The releases of a channel the store chooses among (per `Policies.history`)."""
        history = self.history(name)
        if self.policies.history is History.TIP_ONLY:
            return history[-1:]
        latest: dict[int, Release] = {}
        for release in history:  # a revision counts once, at its latest release
            latest.pop(release.revision, None)
            latest[release.revision] = release
        return tuple(latest.values())

    def _rank(self, release: Release) -> tuple[tuple[int, ...], int]:
        order = self.policies.epoch_order.key(release.epoch)
        if self.policies.tie_break is TieBreak.RELEASE_ORDER:
            return (order, release.sequence)
        return (order, release.revision)

    def _best(self, releases: Iterable[Release]) -> Release | None:
        return max(releases, key=self._rank, default=None)

    def _how_chosen(self, chosen: Release, pool: Sequence[Release]) -> str:
        """Which rule picked `chosen` out of `pool` (all readable, or all for a fresh install)."""
        recent = (
            "most recent"
            if self.policies.tie_break is TieBreak.RELEASE_ORDER
            else "highest revision"
        )
        key = self.policies.epoch_order.key
        greater = [r for r in pool if key(r.epoch) == key(chosen.epoch)]
        if len(pool) == 1:
            return "the only one"
        if not key(chosen.epoch) or len(greater) == len(pool):
            return f"the {recent}"
        if len(greater) == 1:
            return "the greatest epoch"
        return f"the {recent} of the greatest epoch"

    def fresh_install(self, name: str) -> Answer:
        """What a new user tracking `name` installs (snapd sends no epoch)."""
        tracked = self.channel(name)
        serving = self.follows(tracked)
        if serving is None:
            return Answer(None, None, None, f"{tracked} and every less risky channel are closed")
        prefix = "" if serving == tracked else f"{tracked} is closed, so it follows {serving}: "
        tip = self.history(serving)[-1]
        if self.policies.fresh_install is FreshInstall.CHANNEL_TIP:
            chosen = tip
            why = f"new users get the channel's tip, {_named(tip)}"
        else:
            pool = self.candidates(serving)
            best = self._best(pool)
            assert best is not None  # serving is open
            chosen = best
            why = f"new users get the latest epoch: {_named(chosen)}"
            if chosen.revision != tip.revision:
                why += (
                    f", {self._how_chosen(chosen, pool)} in {serving}, not the tip R{tip.revision}"
                )
                why += f" (epoch {tip.epoch})"
        return Answer(chosen.revision, chosen.epoch, chosen.channel, prefix + why)

    def refresh(self, name: str, installed_revision: int, installed_epoch: Epoch) -> Answer:
        """One store answer for a user tracking `name` who has `installed_revision`.

        A revision is offered only if its epoch can read the installed one (snapd asks
        new.can_read(current)). The answer may be the installed revision itself: nothing newer.
        """
        tracked = self.channel(name)
        serving = self.follows(tracked)
        data = _data(installed_epoch)
        if serving is None:
            why = f"{tracked} and every less risky channel are closed, so there is nothing to offer"
            return Answer(None, None, None, why)
        prefix = "" if serving == tracked else f"{tracked} is closed, so it follows {serving}: "

        def readable(channel: str) -> list[Release]:
            return [r for r in self.candidates(channel) if r.epoch.can_read(installed_epoch)]

        if self.policies.unreadable is Unreadable.POOL:
            channels = (serving, *self.less_risky(serving))
            pool = [r for channel in channels if self.is_open(channel) for r in readable(channel)]
            chosen = self._best(pool)
            if chosen is None:
                why = f"nothing in {' or '.join(channels)} can read {data}"
                return Answer(None, None, None, prefix + why)
            why = (
                f"{_named(chosen)} is {self._how_chosen(chosen, pool)} release that can read "
                f"{data} in {serving} and the channels less risky than it"
            )
            return Answer(chosen.revision, chosen.epoch, chosen.channel, prefix + why)

        refused: list[str] = []
        channels = [serving]
        if self.policies.unreadable is Unreadable.LESS_RISKY:
            channels += [c for c in self.less_risky(serving) if self.is_open(c)]
        for channel in channels:
            pool = readable(channel)
            chosen = self._best(pool)
            if chosen is None:
                refused.append(self._cannot(channel, data))
                continue
            if refused:
                why = "; ".join(refused) + f"; {self._can(channel, chosen, pool, None)}"
            else:
                why = self._can(channel, chosen, pool, data) + self._passed_over(chosen, readable)
            return Answer(chosen.revision, chosen.epoch, chosen.channel, prefix + why)
        why = "; ".join(refused) + ", so there is nothing to offer"
        if self.policies.unreadable is Unreadable.STAY:
            why += f" (less risky channels are not asked: policy {Unreadable.STAY.value})"
        return Answer(None, None, None, prefix + why)

    def _passed_over(self, chosen: Release, readable: Callable[[str], list[Release]]) -> str:
        """Name a less risky release that would outrank `chosen` were channels pooled."""
        for channel in self.less_risky(chosen.channel):
            better = self._best(
                r
                for r in readable(channel)
                if r.revision != chosen.revision and self._rank(r) > self._rank(chosen)
            )
            if better is not None:
                return (
                    f", so {_named(better)} is not offered: less risky channels are asked only"
                    f" when {chosen.channel} has nothing that can"
                )
        return ""

    def _cannot(self, channel: str, data: str) -> str:
        tip = self.history(channel)[-1]
        text = f"{_named(tip)} cannot read {data}"
        if len(self.candidates(channel)) > 1:
            text += f" and no earlier {channel} release can"
        return text

    def _can(self, channel: str, chosen: Release, pool: Sequence[Release], data: str | None) -> str:
        """Why `chosen` (readable) was picked in `channel`; `data` None: already said above."""
        tip = self.history(channel)[-1]
        reads = "can" if data is None else f"can read {data}"
        if chosen.revision == tip.revision:
            return f"{_named(chosen)} {reads}"
        if tip in pool:  # the tip can read the data but ranks lower
            return (
                f"{_named(chosen)} {reads} and, though released before the tip"
                f" R{tip.revision} (epoch {tip.epoch}), is {self._how_chosen(chosen, pool)}"
            )
        reason = f"cannot read {data}" if data is not None else "cannot"
        return (
            f"{_named(tip)} {reason}; R{chosen.revision} (epoch {chosen.epoch}), released to"
            f" {channel} earlier, is {self._how_chosen(chosen, pool)} that can"
        )

    def refresh_path(
        self, name: str, installed_revision: int, installed_epoch: Epoch
    ) -> RefreshPath:
        """A whole `snap refresh`: re-asks while the epoch changes (per `Policies.re_refresh`)."""
        hops: list[Answer] = []
        revision, epoch = installed_revision, installed_epoch
        seen = {(revision, epoch)}
        while True:
            answer = self.refresh(name, revision, epoch)
            if not answer.found or answer.revision == revision:
                return RefreshPath(tuple(hops), hops[-1] if hops else answer)
            assert answer.revision is not None and answer.epoch is not None
            hops.append(answer)
            epoch_changed = answer.epoch != epoch
            revision, epoch = answer.revision, answer.epoch
            if (
                not self.policies.re_refresh
                or not epoch_changed
                or (revision, epoch) in seen
                or len(hops) >= MAX_HOPS
            ):
                return RefreshPath(tuple(hops), answer)
            seen.add((revision, epoch))
