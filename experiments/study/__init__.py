"""The study machinery: the driver (prepare, open, run workers), one trial, where a study's
architectures come from (a space or an ablation's grid), its settings, early stopping, the
Optuna storage and sampler, and experiment tracking."""
