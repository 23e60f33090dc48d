"""edge-pop: a POP (point of presence) serving a Turso/libSQL database from a local replica."""

__version__ = "0.1.0"
