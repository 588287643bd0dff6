"""ThinkIMG: teach vision-language models to think with images (tools, agents, SFT, GRPO, pipeline)."""

from thinkimg.config import offline_environment

__version__ = "0.1.0"

offline_environment()
