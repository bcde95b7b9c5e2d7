"""The errors of the `lifecycle` package."""


class LifecycleDomainError(Exception):
    """Base of every error raised by `lifecycle`."""


class PolicyError(LifecycleDomainError):
    """A policy file is malformed or inconsistent; the message says where and what."""


class FactOutOfRange(LifecycleDomainError):
    """Folding an event would take a customer's total beyond what is kept exactly.

    The event is refused (dead-lettered) with this message; the customer stays as
    before it.
    """
