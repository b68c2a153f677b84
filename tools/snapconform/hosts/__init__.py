"""Hosts that run snapd, one small backend per kind, chosen by URL scheme."""
