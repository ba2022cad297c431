"""argparse value types the commands share."""

from __future__ import annotations

import argparse
import math


def port_number(text: str) -> int:
    """A TCP port, 0-65535 (0: a free one): refused by argparse in one line otherwise.

    Given as a string default too (`GATEWAY_PORT`), so a bad environment value is the same
    one-line error, not a traceback while the parser is built.
    """
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {port}")
    return port


def positive_number(text: str) -> float:
    """A finite number > 0 (a speed factor): refused by argparse in one line otherwise.

    `float` alone takes "nan" and "inf", which pass a `<= 0` check and then pace nothing
    (or print "nan minutes"); given as a string default too, like `port_number`.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def seed_number(text: str) -> int:
    """A random seed, an integer >= 0 (numpy refuses a negative one, after the whole run)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is an integer >= 0, got {value}")
    return value


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {least}, got {value}")
    return value


def positive_count(text: str) -> int:
    """A whole number >= 1 (a record count): `--max 0` or `-1` used to stop after one."""
    return _whole_number(text, 1)


def count_or_zero(text: str) -> int:
    """A whole number >= 0, where 0 has a meaning of its own (`--folds 0`: every fold)."""
    return _whole_number(text, 0)


def non_negative_number(text: str) -> float:
    """A finite number >= 0 (a cost in bp, where 0 is free): NaN, inf and < 0 refused.

    `float` alone takes "nan", which every `< 0` check lets through.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value
