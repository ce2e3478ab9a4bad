"""Carry answers from a backend to the client: fan-out, pass-through, streams."""
