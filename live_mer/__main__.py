"""``python -m live_mer`` and the ``live-mer`` command (pyproject's entry point): Ctrl-C while the analysis'
libraries load (scipy, numba, onnxruntime: seconds on a first run) is a stop, exit status 130, not a
traceback."""

import sys


def run() -> None:
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(main())


if __name__ == "__main__":
    run()
