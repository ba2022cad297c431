"""The one registry of vendor API-key settings, read by the ingestor and the gateway alike.

Each keyed vendor has one documented environment variable, `<VENDOR>_API_KEY`. Names used by
earlier releases stay accepted as deprecated aliases: the value is used and a warning names
the variable to rename. Before this registry the ingestor read `COINAPI_KEY` and the gateway
`COINAPI_API_KEY`, so one setting could never serve both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VendorKey:
    """Where a vendor's key is read from."""

    vendor: str  # the catalogue's vendor name
    env: str  # the documented variable
    deprecated: tuple[str, ...] = ()  # older names, accepted with a warning
    # the services that read it: compose and the Kubernetes pods hand it to these only
    # (least privilege); tests/deploy checks each service's settings read exactly these
    readers: tuple[str, ...] = ("ingestor", "gateway")


VENDOR_KEYS: dict[str, VendorKey] = {
    k.vendor: k
    for k in (
        VendorKey("coinglass", "COINGLASS_API_KEY"),
        VendorKey("lunarcrush", "LUNARCRUSH_API_KEY"),
        VendorKey("coinapi", "COINAPI_API_KEY", deprecated=("COINAPI_KEY",)),
        VendorKey("coingecko", "COINGECKO_API_KEY"),
        # the catalogue name, not the package; only the gateway's pass-through sends it (the
        # ingestor's Binance calls are public market data, made without a key)
        VendorKey("binance", "BINANCE_API_KEY", readers=("gateway",)),
    )
}


def key_names_read_by(service: str) -> set[str]:
    """Return the variables (documented and deprecated) of the vendor keys `service` reads."""
    return {n for k in VENDOR_KEYS.values() if service in k.readers for n in (k.env, *k.deprecated)}


_warned: set[str] = set()


def key_env(vendor: str) -> str:
    """Return the documented variable of `vendor`'s key."""
    return VENDOR_KEYS[vendor].env


def read_key(vendor: str, env: Mapping[str, str]) -> str | None:
    """Return `vendor`'s key from `env` (documented name first, then deprecated aliases)."""
    spec = VENDOR_KEYS[vendor]
    value = env.get(spec.env)
    if value:
        return value
    for old in spec.deprecated:
        value = env.get(old)
        if value:
            if old not in _warned:
                _warned.add(old)
                log.warning(
                    "%s is deprecated; rename it to %s (read by every service)", old, spec.env
                )
            return value
    return None


def read_keys(env: Mapping[str, str]) -> dict[str, str]:
    """Return `{documented variable: key}` for every vendor whose key is set in `env`."""
    found = {}
    for vendor, spec in VENDOR_KEYS.items():
        value = read_key(vendor, env)
        if value:
            found[spec.env] = value
    return found
