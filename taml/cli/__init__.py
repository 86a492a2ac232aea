"""The top layer: the ``taml`` command (``taml.cli.main``) and its sub-commands."""
