"""Research experiments: commands that train many networks to answer a question about the
method (does the proxy rank like the full training, what the schedule saves, which budget ranks
the heads) and print the answer as tables. The speed benchmarks are in `experiments.benchmarks`."""
