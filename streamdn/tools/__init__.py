"""Measuring and training: metrics-based evaluation and its report, benchmarks, the BM3D
reference, the quality-targets report and the training loop."""
