"""Benchmarks for graphyard: start a real server, drive it with langgraph_sdk, write JSON results.

Run with `python -m bench` (or `scripts/bench`); see bench/README.md.
"""
