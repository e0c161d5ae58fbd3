"""A stand-in for ``time.perf_counter`` (and ``time.process_time``) that makes the benchmark smoke tests exact."""
from __future__ import annotations


class SquaresClock:
    """Reading k returns k²: the interval between readings 2j and 2j+1 is 4j + 1 seconds, so
    every timed step of a benchmark lasts a different, known time on any machine."""

    def __init__(self) -> None:
        self.readings = 0
        self.cpu_readings = 0

    def perf_counter(self) -> float:
        self.readings += 1
        return float((self.readings - 1) ** 2)

    def process_time(self) -> float:
        """CPU clock: reading k returns k, so every step takes one CPU second."""
        self.cpu_readings += 1
        return float(self.cpu_readings)
