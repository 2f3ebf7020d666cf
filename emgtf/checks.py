"""Type checks of values read from configs, files and command lines.

A YAML ``true`` is a Python bool, and a bool is an int to Python; no count, size or rate is ever
a bool, so every check here turns bools away.
"""

from __future__ import annotations

import math


def is_int(value) -> bool:
    """A Python integer, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
