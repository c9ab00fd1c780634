"""The sections of a study's report (`analysis.report` assembles them), one module per family:
`overview` (what was run, the trials' outcomes), `front` (the Pareto front, the paper's designs,
how to take a trial out), `multi_fidelity` (the schedule's rungs), `over_seeds` (an ablation,
a retraining, the retrainings of a search), `comparisons` (hypervolume, heads at equal MAdds and
at equal latency, latency, parameter importance). Each builder returns `document` blocks and
writes its figures and files into the report's folder."""
