"""Carry the scheduler's messages: each worker's client, the arbiter that holds the decisions for all, and the
lines between them (in process, a Unix socket, Redis), with the wiring that builds them (``instance``).
"""
