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

    def explains(self, field: str, snapd_version: tuple[int, int]) -> bool:
        return self.since <= snapd_version < self.until and bool(re.fullmatch(self.fields, field))

    def describe(self) -> str:
        return f"known divergence {self.key}: the document says {self.document}; {self.observed}"


# Every divergence found so far (bookworm 2.57, trixie 2.68, sid 2.77) was the model's error and
# was fixed in the model; none contradicted the seed documents, so nothing is recorded yet.
KNOWN_DIVERGENCES: tuple[KnownDivergence, ...] = ()


def explain(
    fields: Sequence[str],
    snapd_version: tuple[int, int],
    known: Sequence[KnownDivergence] = KNOWN_DIVERGENCES,
) -> tuple[KnownDivergence, ...]:
    """The entries that explain every field (names already replaced by NAME), else ()."""
    found: list[KnownDivergence] = []
    for field in fields:
        entry = next((k for k in known if k.explains(field, snapd_version)), None)
        if entry is None:
            return ()
        if entry not in found:
            found.append(entry)
    return tuple(found)
