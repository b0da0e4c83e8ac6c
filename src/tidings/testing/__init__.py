"""Test helpers for users' own tests: a fake clock and an in-memory harness.

from tidings.testing import Harness

def test_ban_freezes_payments():
    with Harness(app) as h:
        banned = AccountBanned(account_id="42", reason="fraud", banned_by="support")
        h.publish(account_events, banned, key="42")
        h.drain()
        assert frozen == {"42"}
        h.advance(timedelta(days=30))   # delayed events fall due; drain runs them
"""

from tidings.testing.clock import FakeClock
from tidings.testing.harness import DeadLetter, Harness

__all__ = ["DeadLetter", "FakeClock", "Harness"]
