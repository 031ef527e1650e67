"""The one error the stack raises: a message for a person, and a non-zero exit."""


class StackError(RuntimeError):
    """The stack cannot do what was asked; the message says why and what to do."""
