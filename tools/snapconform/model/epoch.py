"""snapd's epoch: the grammar of `epoch:` in snap.yaml and the store's JSON, and the can-read rule.

Facts (reference/snapd-behaviour.md §1, checked against canonical/snapd snap/epoch.go and
snap/epoch_test.go): an epoch is a pair of lists of uint32, `read` and `write`. snap.yaml is read
with Go's yaml.v2, the store and REST API with encoding/json; the two decoders reach the same
grammar by different roads, and the differences at the edges are kept here on purpose because
they are what snapd answers.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from snapconform.model.gotext import go_quote

__all__ = ["Epoch", "EpochError"]

# snapd's messages, verbatim (snap/epoch.go); %q is Go's quoting, see gotext.go_quote.
ZERO_STAR = "0* is an invalid epoch"
HUGE_NUMBER = "epoch numbers must be less than 2³², but got {}"
BAD_NUMBER = "epoch numbers must be base 10 with no zero padding, but got {}"
BAD_LIST = "epoch read/write attributes must be lists of epoch numbers"
EMPTY_LIST = "epoch list cannot be explicitly empty"
NOT_INCREASING = "epoch list must be a strictly increasing sequence"
TOO_LONG = "epoch list must not have more than 10 entries"
NO_INTERSECTION = "epoch read and write lists must have a non-empty intersection"
# A bare JSON number (or bool, or array) fails both of snapd's attempts (string, then the
# structured form); Go's encoding/json reports the second one. When the epoch is a field of a
# larger JSON document Go names the field instead: "... into Go struct field T.epoch of type ...".
JSON_WRONG_KIND = "json: cannot unmarshal {} into Go value of type snap.structuredEpoch"

MAX_LIST = 10
UINT32_LIMIT = 2**32

_NULL_TAG = "tag:yaml.org,2002:null"


class EpochError(ValueError):
    """An epoch snapd refuses; str() is snapd's own message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _parse_number(text: str) -> int:
    """One epoch number: ASCII base-10 digits, no sign, no zero padding, below 2**32.

    Go's ParseUint reports overflow as soon as the running value passes the limit, before it
    looks at the characters after that point; so "99999999999x" is "too big", not "not base 10".
    """
    if not (len(text) > 1 and text[0] == "0"):
        value = 0
        for ch in text:
            if not "0" <= ch <= "9":
                break
            value = value * 10 + (ord(ch) - ord("0"))
            if value >= UINT32_LIMIT:
                raise EpochError(HUGE_NUMBER.format(go_quote(text)))
        else:
            if text:
                return value
    raise EpochError(BAD_NUMBER.format(go_quote(text)))


def _is_increasing(numbers: Sequence[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(numbers))


@dataclass(frozen=True)
class Epoch:
    """What data a revision can read and what it writes; default is epoch 0.

    Constructing one validates it with snapd's rules, in snapd's order.
    """

    read: tuple[int, ...] = (0,)
    write: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "read", tuple(self.read))
        object.__setattr__(self, "write", tuple(self.write))
        _validate(self.read, self.write)

    # -- parsing ---------------------------------------------------------------------------

    @classmethod
    def from_string(cls, text: str) -> Epoch:
        """The short form: "" or "0", "N", "N*" (what any scalar becomes)."""
        if text in ("", "0"):
            return cls()
        star = text.endswith("*")
        number = _parse_number(text[:-1] if star else text)
        if not star:
            return cls((number,), (number,))
        if number == 0:
            raise EpochError(ZERO_STAR)
        return cls((number - 1, number), (number,))

    @classmethod
    def from_lists(cls, read: Iterable[int] | None, write: Iterable[int] | None) -> Epoch:
        """The structured form with snapd's defaults; None means the key was absent."""
        read_list = None if read is None else tuple(read)
        write_list = None if write is None else tuple(write)
        if read_list is None:
            read_list = (0,) if write_list is None else write_list
            if write_list is None:
                write_list = (0,)
        elif not read_list:
            raise EpochError(EMPTY_LIST)
        if write_list is None:
            write_list = read_list[-1:]
        elif not write_list:
            raise EpochError(EMPTY_LIST)
        return cls(read_list, write_list)

    @classmethod
    def parse_yaml(cls, text: str) -> Epoch:
        """The value of `epoch:` as it stands in snap.yaml (yaml.v2's reading of it)."""
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            # Not snapd's wording: yaml.v2 and PyYAML describe syntax errors differently.
            raise EpochError(f"yaml: {exc}") from None
        return cls.from_yaml_node(node)

    parse = parse_yaml

    @classmethod
    def from_yaml_node(cls, node: yaml.Node | None) -> Epoch:
        """An epoch from an already composed YAML node (None: the key was absent)."""
        if node is None or _is_plain_null(node):
            return cls()  # yaml.v2 skips the unmarshaler for null: the zero epoch
        if isinstance(node, yaml.ScalarNode):
            if node.value in ("null", "~"):
                # yaml.v2 takes an untagged quoted "null"/"~" for null before asking the epoch,
                # then cannot store a string in the struct (snapd prefixes "line N: ").
                raise EpochError(_yaml_type_error("str", node.value, "snap.Epoch"))
            # Any other scalar: yaml.v2 hands over its raw text, so 0xA stays "0xA".
            return cls.from_string(node.value)
        if isinstance(node, yaml.SequenceNode):
            raise EpochError(_yaml_type_error("seq", None, "snap.structuredEpoch"))
        assert isinstance(node, yaml.MappingNode)
        fields: dict[str, tuple[int, ...] | None] = {"read": None, "write": None}
        type_errors: list[str] = []
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in fields:
                continue  # unknown keys are ignored (yaml.v2, non-strict)
            # Later duplicates overwrite earlier ones, as yaml.v2 does.
            fields[key] = _yaml_list(value_node, type_errors)
        if type_errors:
            # Only reached when no EpochError fired: an EpochError aborts yaml.v2 at once.
            raise EpochError(type_errors[0])
        return cls.from_lists(fields["read"], fields["write"])

    @classmethod
    def parse_json(cls, text: str) -> Epoch:
        """The store/REST form: a JSON string or null, or an object of read/write lists."""
        value = _JsonReader(text).document()
        if value.kind == "null":
            return cls()  # Go leaves the string empty for null: ""
        if value.kind == "string":
            return cls.from_string(value.value)
        if value.kind != "object":
            raise EpochError(JSON_WRONG_KIND.format(value.kind))
        fields: dict[str, tuple[int, ...] | None] = {"read": None, "write": None}
        for key, member in value.value:
            name = _json_field(key)
            if name is not None:
                fields[name] = _json_list(member)
        return cls.from_lists(fields["read"], fields["write"])

    # -- questions ---------------------------------------------------------------------------

    @property
    def is_zero(self) -> bool:
        return self.read == (0,) and self.write == (0,)

    def can_read(self, other: Epoch) -> bool:
        """Whether a revision with this epoch can read data written under `other`."""
        return not set(self.read).isdisjoint(other.write)

    # -- rendering ---------------------------------------------------------------------------

    def __str__(self) -> str:
        if self.is_zero:
            return "0"
        if len(self.read) == 1 and len(self.write) == 1 and self.read == self.write:
            return str(self.read[0])
        if len(self.write) == 1 and self.read == (self.write[0] - 1, self.write[0]):
            return f"{self.write[0]}*"
        return json.dumps({"read": self.read, "write": self.write}, separators=(",", ":"))

    def to_json(self) -> str:
        """The full form snapd sends the store (always read and write)."""
        return json.dumps({"read": self.read, "write": self.write}, separators=(",", ":"))

    def to_yaml(self) -> str:
        """Text for `epoch:` in a snap.yaml that parse_yaml reads back to this epoch."""
        short = str(self)
        if not short.startswith("{"):
            return short  # "0", "N" and "N*" are plain YAML scalars
        read = ", ".join(map(str, self.read))
        write = ", ".join(map(str, self.write))
        return f"{{read: [{read}], write: [{write}]}}"


def _validate(read: tuple[int, ...], write: tuple[int, ...]) -> None:
    """snapd's Validate, in its order: empty, zero, too long, not increasing, no overlap."""
    for number in (*read, *write):
        # Lists built in Python (not parsed) get the message their text would have got.
        if not isinstance(number, int) or isinstance(number, bool):
            raise TypeError(f"epoch numbers are ints, not {number!r}")
        _parse_number(str(number))
    if not read or not write:
        raise EpochError(EMPTY_LIST)
    if read == (0,) and write == (0,):
        return
    if len(read) > MAX_LIST or len(write) > MAX_LIST:
        raise EpochError(TOO_LONG)
    if not _is_increasing(read) or not _is_increasing(write):
        raise EpochError(NOT_INCREASING)
    if set(read).isdisjoint(write):
        raise EpochError(NO_INTERSECTION)


# -- YAML ------------------------------------------------------------------------------------


def _is_plain_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.style is None and node.tag == _NULL_TAG


def _yaml_type_error(short_tag: str, value: str | None, go_type: str) -> str:
    """yaml.v2's per-line type error (without the "line N: " it puts in front)."""
    if value is None:
        return f"cannot unmarshal !!{short_tag} into {go_type}"
    shown = value[:7] + "..." if len(value) > 10 else value
    return f"cannot unmarshal !!{short_tag} `{shown}` into {go_type}"


def _yaml_list(node: yaml.Node, type_errors: list[str]) -> tuple[int, ...] | None:
    """A read/write value in snap.yaml; None when absent (plain null counts as absent)."""
    if _is_plain_null(node):
        return None  # yaml.v2 sets the field to nil without asking: same as a missing key
    if isinstance(node, yaml.ScalarNode) and node.value in ("null", "~"):
        type_errors.append(_yaml_type_error("str", node.value, "snap.uint32slice"))
        return None
    if not isinstance(node, yaml.SequenceNode):
        raise EpochError(BAD_LIST)
    texts: list[str] = []
    for element in node.value:
        if not isinstance(element, yaml.ScalarNode):
            raise EpochError(BAD_LIST)  # yaml.v2 cannot make a string of a list or mapping
        # Elements are read as strings, quoted or not: raw text, and a plain null becomes "".
        texts.append("" if _is_plain_null(element) else element.value)
    return tuple(_parse_number(text) for text in texts)


# -- JSON ------------------------------------------------------------------------------------


def _json_field(key: str) -> str | None:
    """encoding/json matches struct fields exactly, else case-insensitively."""
    for name in ("read", "write"):
        if key == name:
            return name
    for name in ("read", "write"):
        if key.casefold() == name:
            return name
    return None


def _json_list(member: _JsonValue) -> tuple[int, ...]:
    """A read/write value in JSON: each element's raw text must be a bare decimal number."""
    if member.kind == "null":
        # encoding/json calls snapd's list decoder with null, which yields an empty, non-nil
        # list: unlike YAML, null here is "explicitly empty", not "absent".
        return ()
    if member.kind != "array":
        raise EpochError(BAD_LIST)
    # Each element is judged on its raw JSON text: "1" (quoted) arrives as "\"1\"" and fails.
    return tuple(_parse_number(element.raw) for element in member.value)


@dataclass(frozen=True)
class _JsonValue:
    kind: str  # null, bool, number, string, array, object (Go's names in its type errors)
    value: Any
    raw: str


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_JSON_SPACE = " \t\n\r"


class _JsonReader:
    """A strict JSON reader that keeps each value's raw text (Go's json.RawMessage)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def document(self) -> _JsonValue:
        value = self.value()
        self.skip_space()
        if self.pos != len(self.text):
            self.fail("after top-level value")
        return value

    def fail(self, context: str) -> None:
        if self.pos >= len(self.text):
            raise EpochError("unexpected end of JSON input")
        # Go's SyntaxError wording; the context phrase is ours where Go's differs.
        raise EpochError(f"invalid character {self.text[self.pos]!r} {context}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _JSON_SPACE:
            self.pos += 1

    def value(self) -> _JsonValue:
        self.skip_space()
        start = self.pos
        text = self.text
        if start >= len(text):
            self.fail("looking for beginning of value")
        ch = text[start]
        if ch == "{":
            return self.object(start)
        if ch == "[":
            return self.array(start)
        if ch == '"':
            try:
                string, end = json.decoder.scanstring(text, start + 1, True)
            except json.JSONDecodeError:
                self.pos = len(text)
                self.fail("in string literal")
                raise  # unreachable: fail raises
            self.pos = end
            return _JsonValue("string", string, text[start:end])
        for word, kind, value in (("true", "bool", True), ("false", "bool", False)):
            if text.startswith(word, start):
                self.pos = start + len(word)
                return _JsonValue(kind, value, word)
        if text.startswith("null", start):
            self.pos = start + 4
            return _JsonValue("null", None, "null")
        match = _JSON_NUMBER.match(text, start)
        if match:
            self.pos = match.end()
            return _JsonValue("number", match.group(), match.group())
        self.fail("looking for beginning of value")
        raise AssertionError  # unreachable: fail raises

    def array(self, start: int) -> _JsonValue:
        self.pos = start + 1
        items: list[_JsonValue] = []
        self.skip_space()
        if self.peek() == "]":
            self.pos += 1
            return _JsonValue("array", items, self.text[start : self.pos])
        while True:
            items.append(self.value())
            self.skip_space()
            ch = self.peek()
            self.pos += 1
            if ch == "]":
                return _JsonValue("array", items, self.text[start : self.pos])
            if ch != ",":
                self.pos -= 1
                self.fail("after array element")

    def object(self, start: int) -> _JsonValue:
        self.pos = start + 1
        members: list[tuple[str, _JsonValue]] = []
        self.skip_space()
        if self.peek() == "}":
            self.pos += 1
            return _JsonValue("object", members, self.text[start : self.pos])
        while True:
            self.skip_space()
            if self.peek() != '"':
                self.fail("looking for beginning of object key string")
            key = self.value()
            self.skip_space()
            if self.peek() != ":":
                self.fail("after object key")
            self.pos += 1
            members.append((key.value, self.value()))
            self.skip_space()
            ch = self.peek()
            self.pos += 1
            if ch == "}":
                return _JsonValue("object", members, self.text[start : self.pos])
            if ch != ",":
                self.pos -= 1
                self.fail("after object key:value pair")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""
