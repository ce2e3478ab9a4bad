"""Who runs next, where, with which options: pure, driven by a clock (``core.Scheduler``).

Nothing here waits, sends or reads a socket; the order is the one seam a setting picks (``order``).
"""
