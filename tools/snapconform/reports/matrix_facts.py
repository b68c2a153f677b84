"""The model's version-dependent facts, and where a run saw each one.

A fact is a module-level constant of snapconform.model named ``*_SINCE`` holding a snapd version
``(major, minor)``: from that version on, snapd behaves another way (the comment above the
constant says how, and where in snapd's source). They are found by reading the model's modules,
so a fact added to the model shows up here without being listed twice.

Where a fact was seen: each history a run saved is predicted again by the model, once as the
model stands for the host's snapd and once with that one fact turned the other way (the
constant moved past the host's version, for the replay only, and put back). The steps whose
prediction changes are the ones that depend on the fact; when snapd confirmed such a step
(verdict pass), the host's version saw the fact's behaviour: the new one when the host's snapd
is at least the fact's version, the old one otherwise. A replay that does not reproduce what
the run recorded (a model changed since, a host with its own settings) is left out, not
guessed at.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import snapconform.model as model_package
from snapconform.conformance import store_steps
from snapconform.conformance.operations import operation_from_json
from snapconform.model import snapd as model

FACT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*_SINCE$")
NEVER = (99, 0)  # a fact moved here applies to no snapd
ALWAYS = (0, 0)  # ... and here to every snapd
REMOTE_SNAPS = "/snaps"  # any directory: both replays name the same files


@dataclass(frozen=True)
class Fact:
    name: str
    module: str
    since: tuple[int, int]
    about: str  # the comment above the constant

    @property
    def version(self) -> str:
        return ".".join(map(str, self.since))

    def applies_to(self, version: tuple[int, int]) -> bool:
        return version >= self.since


def _comment_above(lines: list[str], line_number: int) -> str:
    """The run of ``#`` comment lines right above line ``line_number`` (1-based), as text."""
    found: list[str] = []
    index = line_number - 2
    while index >= 0 and lines[index].lstrip().startswith("#"):
        found.insert(0, lines[index].lstrip()[1:].strip())
        index -= 1
    return " ".join(found)


def _facts_of(module: ModuleType) -> list[Fact]:
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return []
    lines = source.splitlines()
    facts = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if not isinstance(target, ast.Name) or not FACT_NAME.match(target.id):
                continue
            value = getattr(module, target.id, None)
            if (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(part, int) for part in value)
            ):
                about = _comment_above(lines, node.lineno)
                facts.append(Fact(target.id, module.__name__, value, about))
    return facts


def model_facts() -> list[Fact]:
    """Every version-dependent fact of the model, oldest version first."""
    facts: list[Fact] = []
    for info in pkgutil.iter_modules(model_package.__path__, model_package.__name__ + "."):
        facts += _facts_of(importlib.import_module(info.name))
    return sorted(facts, key=lambda fact: (fact.since, fact.name))


def _model_modules() -> list[ModuleType]:
    return [
        importlib.import_module(info.name)
        for info in pkgutil.iter_modules(model_package.__path__, model_package.__name__ + ".")
    ]


@contextlib.contextmanager
def turned(fact: Fact, version: tuple[int, int]) -> Iterator[None]:
    """The model with ``fact`` the other way round for snapd ``version`` (every module that
    holds the constant), put back on leaving. For a replay only: nothing else runs meanwhile."""
    moved = NEVER if fact.applies_to(version) else ALWAYS
    saved = []
    for module in _model_modules():
        if getattr(module, fact.name, None) == fact.since:
            saved.append(module)
            setattr(module, fact.name, moved)
    try:
        yield
    finally:
        for module in saved:
            setattr(module, fact.name, fact.since)


def _locate(snap: model.SnapFile) -> str:
    return f"{REMOTE_SNAPS}/{snap.name}_{snap.version}.snap"


@dataclass(frozen=True)
class Prediction:
    ok: bool
    kind: str | None
    error: str | None
    hooks: tuple[tuple[str, str, str], ...]
    rest: tuple[Any, ...]  # notices, requests, discarded revisions, the state after

    @property
    def recorded(self) -> tuple[bool, str | None, tuple[tuple[str, str, str], ...]]:
        """What a history records of a prediction and a replay can be checked against."""
        return self.ok, self.kind, self.hooks


def _prediction(outcome: model.Outcome) -> Prediction:
    error = outcome.error
    return Prediction(
        ok=error is None,
        kind=None if error is None else error.kind,
        error=None if error is None else error.message,
        hooks=tuple((run.instance, run.hook, run.revision) for run in outcome.hooks_run),
        rest=(outcome.notices, outcome.store_requests, outcome.discarded, outcome.state),
    )


def predict_history(steps: Sequence[dict[str, Any]], version: tuple[int, int]) -> list[Prediction]:
    """The model's prediction of each step of a history, replayed from a fresh snapd."""
    state = model.new_state(snapd_version=version)
    world = store_steps.StoreWorld()
    predictions = []
    for step in steps:
        operation = operation_from_json(dict(step["operation"]))
        if isinstance(operation, store_steps.StoreOperation):
            outcome, world = operation.predict_store(state, world)
        else:
            outcome = operation.predict(state, _locate)
        predictions.append(_prediction(outcome))
        state = outcome.state
    return predictions


def _recorded(step: dict[str, Any]) -> tuple[bool, str | None, tuple[tuple[str, str, str], ...]]:
    expected = step.get("expected") or {}
    hooks = tuple(tuple(hook) for hook in expected.get("hooks") or [])
    return bool(expected.get("ok")), expected.get("kind"), hooks  # type: ignore[return-value]


@dataclass
class Evidence:
    """Steps of one host's run whose prediction depends on a fact."""

    confirmed: list[str] = field(default_factory=list)  # "TEST step N", snapd agreed
    contradicted: list[str] = field(default_factory=list)  # snapd did something else


@dataclass
class History:
    test: str
    steps: list[dict[str, Any]]
    version: tuple[int, int]


def replayable(history: History) -> bool:
    """Whether the model replays the history as the run predicted it (same results, same
    hooks at every step); only those are used as evidence."""
    try:
        predictions = predict_history(history.steps, history.version)
    except Exception:  # an operation this model no longer knows, or cannot replay
        return False
    return all(
        prediction.recorded == _recorded(step)
        for prediction, step in zip(predictions, history.steps, strict=True)
    )


def evidence(fact: Fact, histories: Sequence[History]) -> Evidence:
    """The steps of ``histories`` (one host's) that depend on ``fact``."""
    found = Evidence()
    for history in histories:
        if not history.steps or not replayable(history):
            continue
        as_is = predict_history(history.steps, history.version)
        with turned(fact, history.version):
            try:
                other = predict_history(history.steps, history.version)
            except Exception:  # the other way round, the model refuses to go on: a dependence
                other = [replace(p, rest=("(replay stopped)",)) for p in as_is]
        for step, first, second in zip(history.steps, as_is, other, strict=True):
            if first == second:
                continue
            where = f"{history.test} step {step.get('step', '?')}"
            verdict = step.get("verdict")
            if verdict == "pass":
                found.confirmed.append(where)
            elif verdict in ("divergence", "known-divergence"):
                found.contradicted.append(where)
    return found
