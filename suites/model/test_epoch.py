"""The epoch model against snapd's rules (reference/snapd-behaviour.md §1; canonical/snapd
snap/epoch.go and snap/epoch_test.go, whose cases are restated here as facts)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapconform.model.epoch import Epoch, EpochError

ZERO = Epoch.parse_yaml("0")

# Messages, verbatim from facts §1 (and snap/epoch.go for the ones the facts leave out).
ZERO_STAR = "0* is an invalid epoch"
BAD_LIST = "epoch read/write attributes must be lists of epoch numbers"
EMPTY = "epoch list cannot be explicitly empty"
NOT_INCREASING = "epoch list must be a strictly increasing sequence"
TOO_LONG = "epoch list must not have more than 10 entries"
NO_INTERSECTION = "epoch read and write lists must have a non-empty intersection"


def bad_number(quoted: str) -> str:
    return f"epoch numbers must be base 10 with no zero padding, but got {quoted}"


def huge_number(quoted: str) -> str:
    return f"epoch numbers must be less than 2³², but got {quoted}"


def lists(epoch: Epoch) -> tuple[list[int], list[int]]:
    return list(epoch.read), list(epoch.write)


# -- valid forms -------------------------------------------------------------------------------

# The same text read as snap.yaml (YAML) and as the store's JSON, where both accept it.
GOOD_BOTH = [
    ('""', [0], [0]),
    ('"0"', [0], [0]),
    ("{}", [0], [0]),
    ('"2*"', [1, 2], [2]),
    ('{"read": [2]}', [2], [2]),  # missing write -> last of read
    ('{"read": [1, 2]}', [1, 2], [2]),
    ('{"write": [2]}', [2], [2]),  # missing read -> write
    ('{"write": [1, 2]}', [1, 2], [1, 2]),
    ('{"read": [2,4,8], "write": [2,3,5]}', [2, 4, 8], [2, 3, 5]),
    ('{"read": [0]}', [0], [0]),
    ('{"write": [0]}', [0], [0]),
    ("null", [0], [0]),  # facts §1: epoch: null means 0; JSON null likewise
    ('{"read": [1], "unknown": 5}', [1], [1]),  # unknown keys are ignored
    ('{"read": [3], "write": [4], "read": [4]}', [4], [4]),  # the last duplicate wins
]


@pytest.mark.parametrize(("text", "read", "write"), GOOD_BOTH)
def test_good_yaml(text, read, write):
    assert lists(Epoch.parse_yaml(text)) == (read, write)


@pytest.mark.parametrize(("text", "read", "write"), GOOD_BOTH)
def test_good_json(text, read, write):
    assert lists(Epoch.parse_json(text)) == (read, write)


# YAML only: any scalar is its raw text (facts §1: "in YAML any scalar (5, 1*, 0xA, 1.5)").
GOOD_YAML_ONLY = [
    ("0", [0], [0]),
    ("5", [5], [5]),
    ("1*", [0, 1], [1]),
    ("400*", [399, 400], [400]),
    ("", [0], [0]),  # `epoch:` with nothing after it is null
    ("~", [0], [0]),
    ("Null", [0], [0]),  # YAML 1.1 null spellings become "" and so 0
    ("4294967295", [4294967295], [4294967295]),  # 2**32 - 1 is the largest
    ("read: [1, 2]\nwrite: [2]", [1, 2], [2]),  # block mapping
    ("read:\n  - 1\n  - '2'\n", [1, 2], [2]),  # block list; quoted and bare elements mix
    ('{read: ["1", 2]}', [1, 2], [2]),  # facts §1: YAML list elements may be quoted or not
    ("{read: null, write: [3]}", [3], [3]),  # YAML null leaves the list absent (yaml.v2)
    ("{read: [1, 2], write: ~}", [1, 2], [2]),
]


@pytest.mark.parametrize(("text", "read", "write"), GOOD_YAML_ONLY)
def test_good_yaml_only(text, read, write):
    assert lists(Epoch.parse_yaml(text)) == (read, write)


def test_parse_is_parse_yaml():
    assert Epoch.parse("1*") == Epoch.parse_yaml("1*") == Epoch((0, 1), (1,))


def test_default_epoch_is_zero():
    assert Epoch() == ZERO and lists(Epoch()) == ([0], [0])


# -- invalid forms -----------------------------------------------------------------------------

# (text, message): refused alike in YAML and JSON (snap/epoch_test.go TestBadEpochs).
BAD_BOTH = [
    ('"rubbish"', bad_number('"rubbish"')),
    ('"0xA"', bad_number('"0xA"')),
    ('"001"', bad_number('"001"')),
    ('"01"', bad_number('"01"')),  # zero padding
    ('"+1"', bad_number('"+1"')),  # no sign
    ('"-1"', bad_number('"-1"')),
    ('" 1"', bad_number('" 1"')),  # no spaces
    ('"1.5"', bad_number('"1.5"')),
    ('"4294967296"', huge_number('"4294967296"')),  # 2**32
    ('"0*"', ZERO_STAR),
    ('"42**"', bad_number('"42*"')),  # the star is stripped once, then the rest must be a number
    ('"*"', bad_number('""')),
    ('"00*"', bad_number('"00"')),
    ('{"read": 5}', BAD_LIST),
    ('{"write": 5}', BAD_LIST),
    ('{"read": "5"}', BAD_LIST),
    ('{"read": "1*"}', BAD_LIST),
    ('{"read": {"a": 1}}', BAD_LIST),
    ('{"read": [-1]}', bad_number('"-1"')),
    ('{"write": [-1]}', bad_number('"-1"')),
    ('{"read": [9999999999]}', huge_number('"9999999999"')),
    ('{"read": []}', EMPTY),
    ('{"write": []}', EMPTY),
    ('{"read": [1, 2], "write": []}', EMPTY),
    ('{"read": [1,2,4,3]}', NOT_INCREASING),
    ('{"read": [1,2,2,3]}', NOT_INCREASING),  # duplicates are not strictly increasing
    ('{"write": [4,3,2,1]}', NOT_INCREASING),
    ('{"read": [0], "write": [1]}', NO_INTERSECTION),
    ('{"read": [1, 3, 5], "write": [2, 4, 6]}', NO_INTERSECTION),
    ('{"read": [0,1,2,3,4,5,6,7,8,9,10], "write": [0,1,2,3,4,5,6,7,8,9,10]}', TOO_LONG),
    ('{"read": [0], "write": [0,1,2,3,4,5,6,7,8,9,10]}', TOO_LONG),
]


@pytest.mark.parametrize(("text", "message"), BAD_BOTH)
def test_bad_yaml(text, message):
    with pytest.raises(EpochError) as caught:
        Epoch.parse_yaml(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(("text", "message"), BAD_BOTH)
def test_bad_json(text, message):
    with pytest.raises(EpochError) as caught:
        Epoch.parse_json(text)
    assert str(caught.value) == message


BAD_YAML_ONLY = [
    ("0xA", bad_number('"0xA"')),  # a YAML 1.1 int keeps its raw text
    ("001", bad_number('"001"')),
    ("1.5", bad_number('"1.5"')),
    ("true", bad_number('"true"')),
    ("-1", bad_number('"-1"')),
    ("0*", ZERO_STAR),
    ("4294967296", huge_number('"4294967296"')),
    # ParseUint reports overflow at the digit that overflows, before later junk is seen.
    ('"99999999999x"', huge_number('"99999999999x"')),
    ("{read: [0xA]}", bad_number('"0xA"')),
    ("{read: [010]}", bad_number('"010"')),
    ("{read: [0x1]}", bad_number('"0x1"')),
    ('{read: ["01"]}', bad_number('"01"')),  # quoted or not, the text is what counts
    ("{read: [-1]}", bad_number('"-1"')),
    ("{read: [1.0]}", bad_number('"1.0"')),
    ('{read: ["Ⅰ", "Ⅱ"]}', bad_number('"Ⅰ"')),  # only ASCII digits
    ("{read: [1, ~]}", bad_number('""')),  # a null element is the empty string
    ('{read: [1, "a\\tb"]}', bad_number('"a\\tb"')),  # Go's %q escapes
    ("{read: [[1]]}", BAD_LIST),
    ("{read: 1}", BAD_LIST),
    ("[1, 2]", "cannot unmarshal !!seq into snap.structuredEpoch"),  # yaml.v2's type error
    ('"null"', "cannot unmarshal !!str `null` into snap.Epoch"),  # quoted null: yaml.v2 quirk
    ('{read: "~"}', "cannot unmarshal !!str `~` into snap.uint32slice"),
]


@pytest.mark.parametrize(("text", "message"), BAD_YAML_ONLY)
def test_bad_yaml_only(text, message):
    with pytest.raises(EpochError) as caught:
        Epoch.parse_yaml(text)
    assert str(caught.value) == message


BAD_JSON_ONLY = [
    # facts §1: "in JSON only a string or null (a bare JSON number is an error)"; snapd tries a
    # string, then the structured form, and encoding/json reports the second failure.
    ("5", "json: cannot unmarshal number into Go value of type snap.structuredEpoch"),
    ("0", "json: cannot unmarshal number into Go value of type snap.structuredEpoch"),
    ("true", "json: cannot unmarshal bool into Go value of type snap.structuredEpoch"),
    ("[1]", "json: cannot unmarshal array into Go value of type snap.structuredEpoch"),
    # facts §1: "JSON list elements must be bare integers": each is judged on its raw text.
    ('{"read": ["1"]}', bad_number('"\\"1\\""')),
    ('{"read": [1.0]}', bad_number('"1.0"')),
    ('{"read": [1e3]}', bad_number('"1e3"')),
    ('{"read": [true]}', bad_number('"true"')),
    ('{"read": [null]}', bad_number('"null"')),
    # encoding/json hands null to snapd's list decoder, which makes it explicitly empty.
    ('{"read": null}', EMPTY),
    ('{"read": [1], "write": null}', EMPTY),
    ("", "unexpected end of JSON input"),
]


@pytest.mark.parametrize(("text", "message"), BAD_JSON_ONLY)
def test_bad_json_only(text, message):
    with pytest.raises(EpochError) as caught:
        Epoch.parse_json(text)
    assert str(caught.value) == message


@pytest.mark.parametrize("text", ["{", '{"read": [01]}', "NaN", '{"read": [1,]}', "[1] x"])
def test_malformed_json_is_an_epoch_error(text):
    with pytest.raises(EpochError):
        Epoch.parse_json(text)


def test_json_keys_match_case_insensitively_like_encoding_json():
    assert Epoch.parse_json('{"READ": [3]}') == Epoch.parse_yaml("3")
    assert Epoch.parse_yaml("{READ: [3]}") == ZERO  # yaml.v2 matches exactly: an unknown key


def test_epoch_error_is_a_value_error():
    assert issubclass(EpochError, ValueError)


# -- validation order (facts §1: empty; zero is valid; > 10; not increasing; no intersection) --

ORDER = [
    ('{"read": [], "write": [3, 2]}', EMPTY),  # empty before not increasing
    ('{"read": [0], "write": [0]}', None),  # zero is valid
    ('{"read": [0,0,0,0,0,0,0,0,0,0,0], "write": [5]}', TOO_LONG),  # long before not increasing
    ('{"read": [2, 1], "write": [7]}', NOT_INCREASING),  # not increasing before intersection
    ('{"read": [0, 0], "write": [0]}', NOT_INCREASING),
    ('{"read": [7], "write": [-1]}', bad_number('"-1"')),  # numbers are read before any check
]


@pytest.mark.parametrize(("text", "message"), ORDER)
def test_validation_order(text, message):
    for parse in (Epoch.parse_yaml, Epoch.parse_json):
        if message is None:
            assert parse(text) == ZERO
        else:
            with pytest.raises(EpochError) as caught:
                parse(text)
            assert str(caught.value) == message


def test_constructor_validates():
    with pytest.raises(EpochError, match="strictly increasing"):
        Epoch((2, 1), (1,))
    with pytest.raises(EpochError, match="explicitly empty"):
        Epoch((), (1,))


# -- rendering and equality --------------------------------------------------------------------

RENDER = [
    ("0", "0"),
    ("{}", "0"),
    ("1", "1"),
    ("1*", "1*"),
    ("400*", "400*"),
    ("{read: [0, 1], write: [1]}", "1*"),
    ("{read: [1, 2, 3], write: [1, 2, 3]}", '{"read":[1,2,3],"write":[1,2,3]}'),
    ("{read: [1, 2]}", "2*"),
    ("{read: [0, 2], write: [2]}", '{"read":[0,2],"write":[2]}'),  # not adjacent: not a star
]


@pytest.mark.parametrize(("text", "rendered"), RENDER)
def test_string_form(text, rendered):
    assert str(Epoch.parse_yaml(text)) == rendered


ZERO_SPELLINGS_YAML = ["0", '"0"', "''", "", "null", "~", "{}", "{read: [0]}", "{write: [0]}"]
ZERO_SPELLINGS_JSON = ["null", '"0"', '""', "{}", '{"read": [0]}', '{"read":[0],"write":[0]}']


@pytest.mark.parametrize("text", ZERO_SPELLINGS_YAML)
def test_zero_however_written_yaml(text):
    epoch = Epoch.parse_yaml(text)
    assert epoch == ZERO and hash(epoch) == hash(ZERO) and str(epoch) == "0"


@pytest.mark.parametrize("text", ZERO_SPELLINGS_JSON)
def test_zero_however_written_json(text):
    epoch = Epoch.parse_json(text)
    assert epoch == ZERO and hash(epoch) == hash(ZERO)


def test_frozen_and_hashable():
    epoch = Epoch.parse_yaml("1*")
    with pytest.raises(AttributeError):
        epoch.read = (5,)  # type: ignore[misc]
    assert len({epoch, Epoch.parse_json('"1*"'), Epoch.parse_yaml("{read: [0, 1]}")}) == 1


# -- can_read ----------------------------------------------------------------------------------

CAN_READ = [  # (a, b, a reads b, b reads a) -- snap/epoch_test.go TestCanRead
    ("0", "0", True, True),
    ("0", "1", False, False),
    ("0", "1*", False, True),
    ("0", "2*", False, False),
    ("{read: [1, 2, 3], write: [2]}", "{read: [1, 3, 4], write: [4]}", False, False),
    ("{read: [1, 2, 3], write: [3]}", "{read: [1, 2, 3], write: [2]}", True, True),
]


@pytest.mark.parametrize(("a", "b", "ab", "ba"), CAN_READ)
def test_can_read_cases(a, b, ab, ba):
    ea, eb = Epoch.parse_yaml(a), Epoch.parse_yaml(b)
    assert ea.can_read(eb) is ab
    assert eb.can_read(ea) is ba


# -- properties --------------------------------------------------------------------------------

UINT32 = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def epochs(draw: st.DrawFn) -> Epoch:
    """Any valid epoch: two strictly increasing lists of <= 10 uint32 sharing an element."""
    shared = draw(UINT32)
    read = draw(st.sets(UINT32, max_size=9)) | {shared}
    write = draw(st.sets(UINT32, max_size=9)) | {shared}
    return Epoch(tuple(sorted(read)), tuple(sorted(write)))


@settings(max_examples=500, deadline=None)  # offline and cheap: search widely
@given(epochs())
def test_string_round_trips_through_yaml(epoch):
    assert Epoch.parse_yaml(str(epoch)) == epoch


@settings(max_examples=500, deadline=None)  # offline and cheap: search widely
@given(epochs())
def test_string_round_trips_through_json(epoch):
    text = str(epoch)
    # The short forms are bare text; in JSON they travel as strings.
    as_json = text if text.startswith("{") else json.dumps(text)
    assert Epoch.parse_json(as_json) == epoch


@settings(max_examples=500, deadline=None)  # offline and cheap: search widely
@given(epochs())
def test_to_yaml_and_to_json_round_trip(epoch):
    assert Epoch.parse_yaml(epoch.to_yaml()) == epoch
    assert Epoch.parse_json(epoch.to_json()) == epoch
    assert Epoch.parse_yaml(f"read: {list(epoch.read)}\nwrite: {list(epoch.write)}\n") == epoch


@settings(max_examples=500, deadline=None)  # offline and cheap: search widely
@given(st.integers(min_value=1, max_value=2**32 - 1))
def test_n_star_reads_n_minus_1_and_n(n):
    star = Epoch.parse_yaml(f"{n}*")
    assert star.can_read(Epoch.parse_yaml(str(n - 1)))
    assert star.can_read(Epoch.parse_yaml(str(n)))
    assert not Epoch.parse_yaml(str(n - 1)).can_read(star)  # it writes N only
    if n + 1 < 2**32:
        assert not star.can_read(Epoch.parse_yaml(str(n + 1)))


def facts_can_read(reader_read: list[int], data_write: list[int]) -> bool:
    """facts §1: A can read B when A.read and B.write share an element."""
    return any(number in data_write for number in reader_read)


@settings(max_examples=500, deadline=None)  # offline and cheap: search widely
@given(epochs(), epochs())
def test_can_read_is_the_read_write_intersection(a, b):
    assert a.can_read(b) is facts_can_read(list(a.read), list(b.write))


@settings(max_examples=500, deadline=None)  # offline and cheap: search widely
@given(epochs(), epochs())
def test_equality_and_hash_follow_read_and_write(a, b):
    assert (a == b) is (a.read == b.read and a.write == b.write)
    if a == b:
        assert hash(a) == hash(b)
