import pytest

from tidings.partitioner import murmur2, partition_for

# Vectors from Kafka's own UtilsTest.testMurmur2 (org.apache.kafka.common.utils).
KAFKA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_is_positive_hash_modulo() -> None:
    for data, h in KAFKA_VECTORS:
        assert partition_for(data, 7) == (h & 0x7FFFFFFF) % 7


def test_none_key_spreads_and_single_partition_is_zero() -> None:
    assert partition_for(b"x", 1) == 0
    assert {partition_for(None, 3) for _ in range(200)} == {0, 1, 2}
