"""Talking to the origin database over Hrana."""
