"""Upstreams: everything that puts bytes on the wire to a model server."""
