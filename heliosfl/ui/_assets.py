"""Where the widgets' front-end files are: the source tree's ``widgets/`` or the wheel's copy."""

from __future__ import annotations

from pathlib import Path

__all__ = ["asset"]

_SOURCE = Path(__file__).resolve().parents[2] / "widgets"
_PACKAGED = Path(__file__).resolve().parent / "_widgets"


def asset(name: str) -> Path:
    """The path of front-end file `name` (an editable install reads the source tree).

    Raises
    ------
    FileNotFoundError
        If neither copy exists (a broken install).
    """
    for folder in (_SOURCE, _PACKAGED):
        path = folder / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"heliosfl widget asset {name!r} is missing from {_SOURCE} and {_PACKAGED}"
    )
