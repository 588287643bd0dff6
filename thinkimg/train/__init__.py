"""Training: tiny test models, SFT and GRPO on multi-turn tool trajectories."""
