"""Everything that reads results and never trains: study -> DataFrame, Pareto front and
hypervolume, plots, published reference points, reports (`python -m analysis.report`,
`python -m analysis.paper`)."""
