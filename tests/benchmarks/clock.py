"""A stand-in for ``time.perf_counter`` that makes the benchmark smoke tests exact."""
from __future__ import annotations


class SquaresClock:
    """Reading k returns k²: the interval between readings 2j and 2j+1 is 4j + 1 seconds, so
    every timed step of a benchmark lasts a different, known time on any machine."""

    def __init__(self) -> None:
        self.readings = 0

    def perf_counter(self) -> float:
        self.readings += 1
        return float((self.readings - 1) ** 2)
