"""What is measured of a run: the digests of its files, its paths, its code, its environment
and the config files it read."""
