"""Subcommands of ``pait``: one module each (see ``pait.cli``)."""
