"""Running Hrana requests on the local replica."""
