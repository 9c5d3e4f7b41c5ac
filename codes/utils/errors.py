"""User-facing errors.

A :class:`KULNetError` holds one line that names the file, key or value at fault and what to do.
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
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        # A KULNetError raised in a data-loader worker comes back re-wrapped with the worker's
        # traceback in its message; keep only the user's line.
        if "KULNetError: " not in str(err):
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)


MAX_LINE = 1000  # characters of an error line; a longer one lost its way in a value it quotes


def one_line(err):
    """The user's line of an error, also when a data-loader worker wrapped it with a traceback (at most
    :data:`MAX_LINE` characters)."""
    text = str(err).strip()
    if "KULNetError: " in text:
        text = text.rsplit("KULNetError: ", 1)[1]
    text = text.splitlines()[0] if text else type(err).__name__
    return text if len(text) <= MAX_LINE else f"{text[:MAX_LINE]}... ({len(text)} characters)"


def short(value, limit=60):
    """``repr(value)`` for a message, cut to about ``limit`` characters: a message never quotes a whole
    long value (an option may hold a list of thousands of entries)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
