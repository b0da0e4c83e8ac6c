"""The reference account system: one service publishes account events, four groups react.

Read in this order: `events` (the contract), `service` (the publisher and its HTTP API),
then the consumer groups `payments`, `notifications`, `analytics` and `onboarding`, then
`system` (how they are assembled) and `app` (what ``tidings run`` loads). `traffic`
simulates customers for ``tidings demo``. See README.md.
"""
