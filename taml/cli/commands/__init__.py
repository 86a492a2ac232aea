"""Sub-commands of ``taml``; each module exposes ``register(subparsers, parent)``."""
