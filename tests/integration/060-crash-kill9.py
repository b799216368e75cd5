#!/usr/bin/python3
# LABELS: slow
# TIMEOUT: 300
"""060-crash-kill9: 50 concurrent uploads of random sizes, kill -9 while they
run, restart; every acknowledged object reads back byte-exact, nothing
half-written is listed, start-up succeeds. Three cycles."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

t = lib.Test()
lib.crash_cycles(t, powerloss=False, seed=60)
t.finish()
