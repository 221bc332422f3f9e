"""Bench stage: models in, an interleaved latency/memory table out.

``run`` times and measures; ``models`` builds darkconv's contenders and ``peers`` the reference models.
"""
