"""What SQLite itself says about a statement, before it runs anywhere."""
