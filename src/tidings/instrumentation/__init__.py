"""Instrumentation: a closed catalogue of runtime events and the listeners built on it.

`catalogue` lists every event the runtime emits; `dispatch` delivers them to listeners
(`app.on(EventHandled, fn)`). Metrics (`metrics`, extra ``tidings[metrics]``), health and
the ``--http`` server (`http`), log formats (`logs`) are listeners or helpers on top.
`lag` measures a group's lag in events and seconds from the broker, and its status
(ok / lagging / stalled / stopped), for the dashboard.
"""
