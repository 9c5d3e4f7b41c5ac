"""The plain-text log of a script's run: every line it prints, also written to a file once the results
folder exists (lines printed before that are written first)."""


class RunLog:
    """Print a line and keep it in the log file.

    Args:
        echo (callable): prints one line (``print``, or ``tqdm.write`` beside a progress bar).
    """

    def __init__(self, echo=print):
        self.echo, self.path, self._kept = echo, None, []

    def __call__(self, text=""):
        self.echo(text)
        if self.path is None:
            self._kept.append(text)
        else:
            self._write([text])

    def open(self, path):
        """Write the log to ``path`` from now on, starting with the lines printed so far."""
        self.path = path
        self._write(self._kept, mode="w")
        self._kept = []
        return path

    def _write(self, lines, mode="a"):
        with open(self.path, mode, encoding="utf-8") as handle:
            handle.writelines(f"{line}\n" for line in lines)
