"""User-facing error type.

Every problem caused by the user's input (a bad file, an unknown class, a truncated checkpoint)
is raised as :class:`StaleError` with a message that names the file and the field. The CLI
prints such errors on one line and exits with status 2, instead of a traceback.
"""


class StaleError(Exception):
    """An error in the user's input or environment, with a message meant for people."""
