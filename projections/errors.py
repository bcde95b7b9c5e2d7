"""The errors of the `projections` package."""


class ProjectionError(Exception):
    """Base of every error raised by `projections`: a read model cannot be read or written."""
