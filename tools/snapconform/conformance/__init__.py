"""The suites' library: joins the model's predictions with the harness's observations."""
