"""What the agent can do, one module per kind of data. Each skill returns an ``Outcome``:
the reply and the writes that make it true, which the agent commits with the turn."""
