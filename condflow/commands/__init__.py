"""Sub-commands of the ``condflow`` CLI: each module defines ``register(subparsers)``."""

COMMANDS = (
    "train",
    "evaluate",
    "demo",
    "configs",
    "convert_smpl",
    "export",
    "predict",
    "fit",
    "import_prohmr",
)
