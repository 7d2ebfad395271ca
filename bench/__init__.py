"""The benchmark behind `make bench`: the dashboard under gunicorn on the sandbox, with latency.

`bench/run.py` starts everything, drives it with simulated staff and prints one table of targets;
see BENCHMARKS.md for the recorded results and what each figure means.
"""
