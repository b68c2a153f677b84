"""The Jinja2 environment every page is rendered with: autoescaping on, undefined names are
errors, the shared stylesheet inlined (pages open offline: nothing is fetched)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2

# Outcomes and verdicts -> the CSS class that colours them (stylesheet: templates/style.css).
VERDICT_CLASSES = {
    "pass": "good",
    "passed": "good",
    "confirmed": "good",
    "divergence": "bad",
    "failed": "bad",
    "error": "bad",
    "host-fault": "fault",
    "known-divergence": "known",
    "xfailed": "known",
    "xpassed": "warn",
    "skipped": "muted",
    "interrupted": "warn",
    "not run": "muted",
    "pending": "muted",
}


def verdict_class(outcome: str | None) -> str:
    return VERDICT_CLASSES.get(outcome or "", "muted")


def as_json(value: Any) -> str:
    """A value as compact JSON text (for a page, escaped by the template like any text)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def value_text(value: Any) -> str:
    """A recorded value for reading: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else as_json(value)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("snapconform.reports", "templates"),
        autoescape=True,  # every template is HTML: histories carry snapd's and the shell's text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["verdict_class"] = verdict_class
    env.filters["as_json"] = as_json
    env.filters["value_text"] = value_text
    env.filters["seconds"] = lambda value: "" if value is None else f"{float(value):.2f} s"
    return env


def render_page(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
