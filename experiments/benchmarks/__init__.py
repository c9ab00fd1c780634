"""Benchmark scripts: they print ratios and throughputs; tests never assert wall-clock times."""
