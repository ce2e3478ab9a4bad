"""Marshmallow schemas for request bodies, one module per surface."""
