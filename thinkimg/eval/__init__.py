"""Evaluation: answer metrics (ChartQA relaxed accuracy, exact match) and run-level aggregation."""
