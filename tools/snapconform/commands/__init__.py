"""Sub-commands of `python -m snapconform`, one module each."""
