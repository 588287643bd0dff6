"""Agent runtime: the action protocol, ChartToolEnv, policies and the batched rollout loop."""
