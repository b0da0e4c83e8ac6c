"""The contenders: one module per client family, each exposing its scenarios as functions.

A scenario function takes a `Job` and returns a JSON-able dict; `benchmarks.worker` runs it
in a subprocess of its own, so peak RSS and CPU time are per contender.
"""
