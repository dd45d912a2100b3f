"""Data the denoisers are trained and measured on: noise synthesis, synthetic moving scenes,
training batches and validation clips."""
