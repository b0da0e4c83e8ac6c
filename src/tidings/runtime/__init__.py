"""The consumer engine, written once for every backend."""
