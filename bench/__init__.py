"""
The bench: the signaling server under load, each figure against baselines measured in the same run.

`make bench` (or `python -m bench`) runs every scenario of bench/scenarios.py against the bare
relay (bench/relay.py), the daphne floor (bench/floor.py) and the site, and prints one table.
Speed is measured here, never by the tests.
"""
