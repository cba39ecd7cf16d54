"""The tools around the core and the server: the CLI, evaluation and the build."""
