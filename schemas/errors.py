"""The errors of the `schemas` package: one base, one kind per failure."""


class SchemaError(Exception):
    """Base of every error raised by `schemas`."""


class InvalidEvent(SchemaError):
    """Bytes that are not a valid event: malformed JSON or a contract violation.

    The message says what is wrong and where (a JSON path such as `$.amount_minor`).
    """
