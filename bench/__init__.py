"""Benchmarks (issue 9): ``make bench`` runs ``bench.run``; ``make bench-scale`` runs ``bench.scale``.

Every script prints one JSON object on stdout; ``bench.run`` aggregates them into docs/benchmarks.md.
"""
