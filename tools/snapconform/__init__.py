"""snapconform: drive real snapd and check it, step by step, against a reference model."""

__version__ = "0.1.0"
