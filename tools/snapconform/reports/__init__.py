"""Pages people look at: the run report (artifacts/report.html), a transcript page per test, and
the release plan drawn as one flow diagram per user (`table --format html|svg|mermaid`).

This room reads what the other rooms wrote (histories, summaries, transcripts, host facts) and
the model's tables; it imports snapconform.model and snapconform.conformance data, never the
harness or the hosts directly. Pages are static: inline CSS, no external scripts, fonts or
images, so they open offline from the artifacts directory.

Reusable pieces (a scenarios x hosts matrix page is meant to be built from them):
- `pages.render_page(template, **context)`: the Jinja2 environment (autoescaping on) and the
  shared stylesheet; `verdict_class(outcome)` gives the colour class of a verdict or outcome.
- `runs.load_run(artifacts_dir) -> RunView`: one host's run as data (facts, totals, tests with
  their steps, known divergences hit), readable long after pytest has exited.
- `flows.user_flows(table, observations)`: a plan's per-user flows as data, drawn by
  `diagrams` (graphviz SVG, Mermaid, an HTML page).
"""
