"""The run-time path: load an artifact and run it. Never imports torch at module level."""
