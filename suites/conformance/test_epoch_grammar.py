"""The epoch grammar, differentially: random epoch texts (valid and invalid, in every YAML form
snapd reads) are written into snap.yaml and installed over a known epoch by real snapd;
acceptance, the refusal message and the resulting can-read behaviour must match
snapconform.model.epoch (through the model's install prediction)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapconform.conformance.operations import InstallFile
from snapconform.conformance.session import ConformanceRun, NameAllocator
from snapconform.model.snapd import SnapFile

pytestmark = pytest.mark.conformance

numbers = st.one_of(
    st.integers(0, 4).map(str),
    st.sampled_from(["01", "00", "4294967295", "4294967296", "-1", "+1", "0x1", "1.0", "1e3"]),
)
scalars = st.one_of(
    numbers,
    numbers.map(lambda n: f"{n}*"),
    numbers.map(lambda n: f'"{n}"'),
    st.sampled_from(["", "null", "~", "true", "''", '"0*"', "x"]),
)
number_lists = st.lists(numbers, max_size=12).map(lambda items: "[" + ", ".join(items) + "]")
mappings = st.builds(
    lambda read, write: "{" + ", ".join(p for p in (read, write) if p) + "}",
    st.one_of(st.just(""), number_lists.map(lambda items: f"read: {items}")),
    st.one_of(st.just(""), number_lists.map(lambda items: f"write: {items}")),
)
epoch_texts = st.one_of(scalars, mappings)
names = NameAllocator("sc")
installed_epochs = st.sampled_from([None, "1", "2*", "{read: [1, 3], write: [3]}"])


@given(installed=installed_epochs, text=epoch_texts)
def test_epoch_text_over_a_known_epoch(host_session, installed, text):
    run = ConformanceRun(host_session)
    name = names.fresh()
    run.step(InstallFile(SnapFile(name, "1.0", epoch_yaml=installed)))
    try:
        run.step(InstallFile(SnapFile(name, "2.0", epoch_yaml=text)))
    finally:
        run.client.remove(name, purge=True)
