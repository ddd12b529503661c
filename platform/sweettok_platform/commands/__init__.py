"""Subcommands of the ``sweettok`` CLI, one module each."""
