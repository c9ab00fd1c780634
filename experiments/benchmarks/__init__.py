"""Speed benchmarks: they print ratios and throughputs; tests never assert wall-clock times.
Each reads `conf/` through `experiments.config`, so it measures what the commands run. The
research experiments (proxy fidelity, the schedule's savings, the heads) are in
`experiments.research`."""
