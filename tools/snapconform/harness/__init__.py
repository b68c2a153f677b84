"""The harness: fixture snaps, the framed shell, snap operations and observation of snapd."""
