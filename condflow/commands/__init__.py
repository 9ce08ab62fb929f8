"""Sub-commands of the ``condflow`` CLI: each module defines ``register(subparsers)``."""

COMMANDS = ("train", "evaluate", "demo", "convert_smpl", "export", "predict", "fit", "fuse")
