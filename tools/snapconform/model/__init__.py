"""The reference model: pure Python, no I/O, imports nothing else of snapconform.

epoch          -- snapd's epoch grammar and can-read rule
store          -- the store's channel/epoch choice (what a user gets), close and unrelease
store_catalog  -- the store's content (a Store and the file of each revision, per snap) and
                  its answer to a request snapd sends
plan           -- release plans and the transition table they produce
snapd          -- one machine's snapd as an immutable state machine (the API: sideloads from
                  snapd.py, store operations from snapd_store.py, data from snapd_state.py,
                  the shared change mechanics in snapd_changes.py, texts in snapd_text.py)
"""
