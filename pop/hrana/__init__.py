"""Hrana over HTTP: the wire protocol spoken by Turso and libSQL clients."""
