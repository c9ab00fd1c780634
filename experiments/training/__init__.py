"""Training and evaluation: the trainer, the loss, the metrics, the paper's evaluation protocol,
and where a run executes (device, torchrun, seeds, environment facts)."""
