"""The reference model: pure Python, no I/O, imports nothing else of snapconform.

epoch  -- snapd's epoch grammar and can-read rule
store  -- the store's channel/epoch choice (what a user gets)
plan   -- release plans and the transition table they produce
snapd  -- one machine's snapd as an immutable state machine
"""
