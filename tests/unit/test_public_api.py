import tidings


def test_all_is_sorted_and_complete() -> None:
    assert tidings.__all__ == sorted(tidings.__all__)
    for name in tidings.__all__:
        assert hasattr(tidings, name), name
    assert {"App", "Event", "Context", "Retry", "Batch"} <= set(tidings.__all__)


def test_testing_module_exports() -> None:
    import tidings.testing

    assert tidings.testing.__all__ == ["DeadLetter", "FakeClock", "Harness"]
