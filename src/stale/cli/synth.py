"""Placeholder for `stale synth` (being written; replaced in a later commit)."""

HELP = "(not yet available)"


def add_arguments(parser):
    pass


def run(args):
    from stale.errors import StaleError

    raise StaleError("this command is not available yet")
