"""Prefect flows: one per pipeline stage, `train-grpo` chaining them, `re-evaluate` on a schedule.

STUB (issue #2): the pipeline issue (#6) writes the flows and `flows/deploy.py`. Nothing in thinkimg/ imports this.
"""
