"""The errors of the `lifecycle` package."""


class LifecycleDomainError(Exception):
    """Base of every error raised by `lifecycle`."""


class PolicyError(LifecycleDomainError):
    """A policy file is malformed or inconsistent; the message says where and what."""
