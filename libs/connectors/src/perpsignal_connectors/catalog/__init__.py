"""Endpoint catalogues of every vendor as data, for the gateway's pass-through operations.

Each vendor module (`coinglass`, `lunarcrush`, `coinapi`, `binance_usdm`, `okx`, `coingecko`,
`alternative_me`) holds one `VENDOR` dict: base URL and the env var that overrides it, the auth
header and the env var of its key, a per-minute call budget, a cache TTL and a table of
endpoints, one line each: `name | path | summary | params` (a fifth column may name a method
other than GET). `params` is a compact spec, one token per parameter: `name[*][:type]` where
`*` marks it required and `type` is `int`, `number`, `bool`, `string` (default) or the name of
an enum in the vendor's `enums` (space-separated values). A `{name}` in the path makes that
parameter a path parameter. Keeping the catalogue as data means adding an endpoint is one line,
and the gateway derives operation names, JSON Schemas and HTTP calls from it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from perpsignal_connectors.keys import VENDOR_KEYS

VENDOR_MODULES: tuple[str, ...] = (
    "coinglass",
    "lunarcrush",
    "coinapi",
    "binance_usdm",
    "okx",
    "coingecko",
    "alternative_me",
)

_TYPES = {"string": "string", "int": "integer", "number": "number", "bool": "boolean"}


@dataclass(frozen=True)
class Param:
    """One endpoint parameter: where it goes, its JSON type and allowed values."""

    name: str
    required: bool
    type: str  # JSON Schema type
    location: str  # "path" or "query"
    enum: tuple[str, ...] = ()

    def json_schema(self) -> dict[str, Any]:
        """Return the JSON Schema of this parameter's value."""
        schema: dict[str, Any] = {"type": self.type}
        if self.enum:
            schema["enum"] = list(self.enum)
        return schema


@dataclass(frozen=True)
class Endpoint:
    """One vendor endpoint, exposed as the operation `<vendor>.<name>`."""

    vendor: str
    name: str
    method: str
    path: str
    summary: str
    params: tuple[Param, ...]

    @property
    def operation(self) -> str:
        """Return the operation name used by the gateway's `/invoke`."""
        return f"{self.vendor}.{self.name}"

    def params_schema(self) -> dict[str, Any]:
        """Return a JSON Schema object describing the arguments of this endpoint."""
        return {
            "type": "object",
            "properties": {p.name: p.json_schema() for p in self.params},
            "required": [p.name for p in self.params if p.required],
            "additionalProperties": False,
        }


@dataclass(frozen=True)
class VendorCatalog:
    """A vendor: where it lives, how it authenticates, its budget and its endpoints."""

    name: str
    title: str
    base_url: str
    base_url_env: str
    docs: str
    budget_per_min: int
    cache_ttl_s: float
    auth_header: str | None = None
    auth_prefix: str = ""
    key_env: str | None = None
    key_required: bool = False
    endpoints: tuple[Endpoint, ...] = field(default_factory=tuple)


def parse_params(spec: str, path: str, enums: dict[str, str]) -> tuple[Param, ...]:
    """Parse a compact parameter spec such as `symbol* interval*:interval limit:int`."""
    params = []
    for token in spec.split():
        name, _, kind = token.partition(":")
        required = name.endswith("*")
        name = name.rstrip("*")
        location = "path" if "{" + name + "}" in path else "query"
        kind = kind or "string"
        if kind in _TYPES:
            params.append(Param(name, required or location == "path", _TYPES[kind], location))
        elif kind in enums:
            params.append(Param(name, required, "string", location, tuple(enums[kind].split())))
        else:
            raise ValueError(f"unknown parameter type {kind!r} in {path}")
    declared = {p.name for p in params}
    params.extend(Param(n, True, "string", "path") for n in sorted(_path_names(path) - declared))
    return tuple(params)


def _path_names(path: str) -> set[str]:
    names = set()
    rest = path
    while "{" in rest:
        _, _, tail = rest.partition("{")
        name, _, rest = tail.partition("}")
        names.add(name)
    return names


def build_catalog(data: dict[str, Any]) -> VendorCatalog:
    """Turn one vendor module's `VENDOR` dict into a typed catalogue."""
    enums: dict[str, str] = data.get("enums", {})
    endpoints = []
    for line in data["endpoints"].strip().splitlines():
        cells = [c.strip() for c in line.split("|")] + ["", ""]
        name, path, summary, spec = cells[:4]
        method = cells[4] or "GET"
        params = parse_params(spec, path, enums)
        endpoints.append(Endpoint(data["name"], name, method, path, summary, params))
    return VendorCatalog(
        name=data["name"],
        title=data["title"],
        base_url=data["base_url"],
        base_url_env=data["base_url_env"],
        docs=data["docs"],
        budget_per_min=data["budget_per_min"],
        cache_ttl_s=data["cache_ttl_s"],
        auth_header=data.get("auth_header"),
        auth_prefix=data.get("auth_prefix", ""),
        # one registry of key variables, shared with the ingestor (perpsignal_connectors.keys)
        key_env=VENDOR_KEYS[data["name"]].env if data["name"] in VENDOR_KEYS else None,
        key_required=data.get("key_required", False),
        endpoints=tuple(endpoints),
    )


@cache
def load_catalogs() -> tuple[VendorCatalog, ...]:
    """Return every vendor catalogue (loaded once)."""
    catalogs = []
    for module in VENDOR_MODULES:
        mod = importlib.import_module(f"{__name__}.{module}")
        catalogs.append(build_catalog(mod.VENDOR))
    return tuple(catalogs)


def all_endpoints() -> list[Endpoint]:
    """Return every endpoint of every vendor."""
    return [e for c in load_catalogs() for e in c.endpoints]
