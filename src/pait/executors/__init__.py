"""Executors other than the default local loop (which lives in ``pait.experiment``)."""
