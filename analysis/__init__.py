"""Everything that reads results and never trains: study -> DataFrame, Pareto front and
hypervolume, plots, published reference points, reports (`python -m analysis.report`,
its sections in `analysis.sections`; `python -m analysis.paper`)."""
