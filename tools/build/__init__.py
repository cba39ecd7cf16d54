"""The build: `python build.py` assembles web/dist (tools/build/web.py), `python build.py
models` exports the encoders and trains the intent heads (tools/build/models.py); see
docs/build.md for a map of the modules."""
