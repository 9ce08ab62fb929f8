"""Bridges to other implementations' files: ProHMR's checkpoints (:mod:`.prohmr`)."""
