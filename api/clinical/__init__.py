"""The rules of CLINICAL.md as pure functions over plain data: the procedure clock, the baseline,
scoring, the check-in schedule, the milestone engine, candidacy and the procedure rules.

Nothing here reads a database or knows about HTTP (tests/test_layers.py enforces it): these
modules are the heart of the product and are tested on plain values.
"""
