#!/usr/bin/python3
# LABELS: slow
# TIMEOUT: 300
"""061-crash-powerloss: as 060, but the server runs with --powerloss-sim (the
I/O layer logs undo records for unsynced writes) and after each kill -9
`cairn powerloss-replay DATA` drops every write not covered by a sync and
tears the last one, as a power cut would; then restart and verify."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

t = lib.Test()
lib.crash_cycles(t, powerloss=True, seed=61)
t.finish()
