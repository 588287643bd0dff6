"""The tool server (FastAPI), its HTTP ToolClient and a launcher that starts and always stops it."""
