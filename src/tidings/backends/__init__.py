"""Brokers behind one narrow seam (`tidings.backends.base`)."""
