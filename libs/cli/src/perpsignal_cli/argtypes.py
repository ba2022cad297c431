"""argparse value types the commands share."""

from __future__ import annotations

import argparse


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
