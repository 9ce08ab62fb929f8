"""Bridges to other implementations' files: ProHMR's checkpoints (:mod:`.prohmr`)."""

__all__: list[str] = []  # nothing re-exported: import from the modules
