"""The errors of the `consumers` package: one base, messages that say what to do."""


class LifecycleError(Exception):
    """Base of every error the engine's edge (logs, CLI, settings) raises on purpose."""


class ConfigurationError(LifecycleError):
    """A setting is missing or malformed."""


class LogUnavailable(LifecycleError):
    """The log cannot be reached or written."""


class KeyStoreUnavailable(LifecycleError):
    """The store of the customers' keys cannot be reached or written."""
