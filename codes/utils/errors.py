"""User-facing errors.

A :class:`KULNetError` carries one line that names the file, key or value at fault and what to do.
Entry scripts catch it, print ``error: <message>`` and exit with status 2 instead of a traceback.
"""


class KULNetError(Exception):
    """A problem with the user's input (paths, images, options, checkpoints), told in one line."""


def run_cli(main):
    """Call ``main()`` and turn a :class:`KULNetError` into a one-line message and exit status 2."""
    import sys

    try:
        return main()
    except KULNetError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
