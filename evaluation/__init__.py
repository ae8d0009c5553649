"""evalkit: evaluation and theory-of-change research kit.

The import name is ``evaluation``; the console command is ``evalkit``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evalkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from evaluation.errors import DataError, EvalKitError, ParamsError  # noqa: E402

__all__ = ["__version__", "DataError", "EvalKitError", "ParamsError"]
