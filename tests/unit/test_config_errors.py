import pytest

from tidings import App, Batch, ConfigurationError, Event, Retry
from tidings.backends.registry import open_backend


class CfgEvent(Event):
    n: int


def test_unknown_scheme_suggests_the_right_one() -> None:
    with pytest.raises(ConfigurationError, match="Did you mean kafka://"):
        open_backend("kafak://localhost:9092")
    with pytest.raises(ConfigurationError, match="no scheme"):
        open_backend("localhost:9092")


def test_publishing_a_non_event_names_the_fix() -> None:
    app = App("cfg", broker="memory://cfg")
    with pytest.raises(ConfigurationError, match="takes an Event instance"):
        app.publish("t", {"n": 1})  # type: ignore[arg-type]


def test_policies_validate_where_declared() -> None:
    with pytest.raises(ConfigurationError, match="attempts must be >= 1"):
        Retry(attempts=0)
    with pytest.raises(ConfigurationError, match="max_size"):
        Batch(max_size=0)
    app = App("cfg2", broker="memory://cfg2")
    with pytest.raises(ConfigurationError, match="concurrency"):
        app.consumer("t", group="g", concurrency=0)
    with pytest.raises(ConfigurationError, match="name"):
        app.topic("bad name")


def test_one_group_handles_a_topic_once() -> None:
    app = App("cfg3", broker="memory://cfg3")

    @app.consumer("t", group="g")
    def a(e: CfgEvent) -> None: ...

    with pytest.raises(ConfigurationError, match="already has a consumer"):

        @app.consumer("t", group="g")
        def b(e: CfgEvent) -> None: ...


def test_retry_backoff_grows_and_is_capped() -> None:
    r = Retry(attempts=5, backoff=1.0, max_backoff=3.0, jitter=False)
    assert [r.delay_before(n) for n in (2, 3, 4, 5)] == [1.0, 2.0, 3.0, 3.0]
    assert r.should_retry(ValueError(), 4) and not r.should_retry(ValueError(), 5)
    assert not Retry(give_up_on=(KeyError,)).should_retry(KeyError(), 1)
