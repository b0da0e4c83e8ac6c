"""`tidings run --workers N`: a supervisor and the worker processes it keeps alive.

`supervisor.py` (the loop), `worker.py` (the process it starts), `heartbeat.py` (how a
worker says its poll loops turn), `settings.py` (limits and parsing), `reload.py`
(`--reload`, the only module that imports watchfiles: the extra ``tidings[reload]``).
"""
