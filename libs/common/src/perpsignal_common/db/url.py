"""One reading of a PostgreSQL URL for SQLAlchemy, Alembic and raw asyncpg pools.

Users paste URLs in libpq's form (`postgres://`, `postgresql://`, `?sslmode=require`,
`sslrootcert=`, `channel_binding=`, `options=`), which asyncpg through SQLAlchemy does not
understand: SQLAlchemy hands every query parameter to `asyncpg.connect()` as a keyword, so
`?sslmode=require` raised `TypeError`. `parse_database_url` splits a URL into a bare URL (no
query) and the keyword arguments asyncpg takes, with the libpq semantics:

| sslmode | TLS | certificate | host name |
| --- | --- | --- | --- |
| disable | no | - | - |
| allow / prefer | if the server offers it | not checked | not checked |
| require | yes | checked only when `sslrootcert` is given (as libpq) | no |
| verify-ca | yes | checked against `sslrootcert` (or `system`) | no |
| verify-full | yes | checked | yes |

`sslrootcert=system` uses the operating system's trust store (libpq 16) and, as in libpq,
makes verify-full the default. `sslcert`/`sslkey`/`sslpassword` present a client certificate.
`options` is sent in the startup packet as libpq does (`-c search_path=x`, Neon's
`endpoint=<id>`). asyncpg cannot do SCRAM channel binding: `channel_binding=require` is
accepted with a warning (TLS still protects the connection per `sslmode`).

A pooled host (Neon's `-pooler` endpoints, or `?pgbouncer=true`) sits behind PgBouncer in
transaction mode, where a named prepared statement may land on another server connection:
asyncpg's statement cache is disabled (`statement_cache_size=0`), SQLAlchemy's as well, and
SQLAlchemy's own prepared statements get unique names.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy.engine import URL, make_url

from perpsignal_common.errors import ConfigError

log = logging.getLogger(__name__)

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg", "postgres+asyncpg")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class PgConnect:
    """A parsed database URL: where to connect and how."""

    url: URL = field(repr=False)
    sslmode: str | None
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    sslpassword: str | None = field(default=None, repr=False)
    sslcrl: str | None = None
    pooled: bool = False
    options: str | None = None
    server_settings: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def plaintext_risk(self) -> str | None:
        """Return why this connection may travel in clear over a network, or None.

        Below `require` (libpq's default `prefer` included, PGSSLMODE read as asyncpg does)
        a man in the middle can refuse TLS and read the password exchange and every row. A
        Unix socket or a loopback host (a TLS-terminating sidecar such as cloud-sql-proxy)
        never leaves the machine.
        """
        mode = self.sslmode or os.environ.get("PGSSLMODE", "").lower() or "prefer"
        if mode in ("require", "verify-ca", "verify-full"):
            return None
        host = self.url.host
        if not host or host.startswith("/") or host == "localhost":
            return None
        try:
            if ipaddress.ip_address(host.strip("[]")).is_loopback:
                return None
        except ValueError:
            pass
        return f"DATABASE_URL connects to {host} with sslmode={mode}"

    @property
    def sqlalchemy_url(self) -> URL:
        """Return the `postgresql+asyncpg` URL without libpq parameters (they go to kwargs)."""
        url = self.url.set(drivername="postgresql+asyncpg")
        if self.pooled:
            url = url.update_query_dict({"prepared_statement_cache_size": "0"})
        return url

    @property
    def dsn(self) -> str:
        """Return the bare `postgresql://` DSN (password included) for `asyncpg.create_pool`."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def ssl_argument(self) -> ssl.SSLContext | str | bool | None:
        """Return asyncpg's `ssl` argument: a context for require and above, else the mode."""
        mode = self.sslmode
        if mode is None:
            return None  # asyncpg's default (PGSSLMODE, else prefer)
        if mode == "disable":
            return False
        if mode in ("allow", "prefer"):
            return mode
        verify = mode in ("verify-ca", "verify-full") or self.sslrootcert is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = mode == "verify-full"
        if verify:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self._load_roots(ctx)
        else:
            ctx.verify_mode = ssl.CERT_NONE
        if self.sslcert:
            try:
                ctx.load_cert_chain(
                    self.sslcert, keyfile=self.sslkey, password=self.sslpassword or None
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"DATABASE_URL: cannot load the client certificate sslcert={self.sslcert!r} "
                    f"sslkey={self.sslkey!r}: {exc}"
                ) from exc
        if self.sslcrl:
            ctx.load_verify_locations(cafile=self.sslcrl)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
        return ctx

    def _load_roots(self, ctx: ssl.SSLContext) -> None:
        root = self.sslrootcert
        if root == "system":
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            return
        if root is None:
            default = Path.home() / ".postgresql" / "root.crt"
            if not default.exists():
                raise ConfigError(
                    f"DATABASE_URL: sslmode={self.sslmode} checks the server certificate but no "
                    f"CA is given: add sslrootcert=/path/to/ca.pem (or sslrootcert=system for the "
                    f"operating system's trust store), or create {default}"
                )
            root = str(default)
        try:
            ctx.load_verify_locations(cafile=root)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"DATABASE_URL: cannot read sslrootcert={root!r}: {exc}") from exc

    def asyncpg_kwargs(self, server_settings: dict[str, str] | None = None) -> dict[str, Any]:
        """Return the keyword arguments for `asyncpg.connect` / `create_pool` (and SQLAlchemy).

        `server_settings` (e.g. the statement timeout) are merged over the URL's own.
        """
        settings = {**self.server_settings, **(server_settings or {})}
        if self.options is not None:
            settings["options"] = self.options
        kwargs: dict[str, Any] = dict(self.extra)
        if settings:
            kwargs["server_settings"] = settings
        ssl_arg = self.ssl_argument()
        if ssl_arg is not None:
            kwargs["ssl"] = ssl_arg
        if self.pooled:
            kwargs["statement_cache_size"] = 0
        return kwargs

    def sqlalchemy_connect_args(
        self, server_settings: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Return `connect_args` for `create_async_engine(self.sqlalchemy_url, ...)`."""
        kwargs = self.asyncpg_kwargs(server_settings)
        if self.pooled:
            kwargs["prepared_statement_name_func"] = _unique_statement_name
        return kwargs


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


_N = TypeVar("_N", int, float)


def is_pooled_host(host: str | None) -> bool:
    """Return True for a PgBouncer-pooled host name (Neon: `ep-x-123-pooler.region...`)."""
    return bool(host) and str(host).split(".", 1)[0].endswith("-pooler")


def parse_database_url(raw: str) -> PgConnect:
    """Return the parsed form of a PostgreSQL URL in any form users paste.

    Raises ConfigError (naming the accepted values) for an unknown scheme or sslmode; the
    password never appears in a message.
    """
    raw = raw.strip()
    try:
        scheme = urlsplit(raw).scheme.lower()
    except ValueError:  # its message may quote the host part, password included
        raise ConfigError(_NOT_A_URL) from None
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"DATABASE_URL: scheme {scheme!r} is not PostgreSQL; use postgresql://, postgres:// "
            "or postgresql+asyncpg://"
        )
    # parse the query ourselves: values such as options=-c%20search_path%3Dx keep their spaces
    base, _, query = raw.partition("?")
    try:
        url = make_url(_userinfo_at_encoded(base))
    except Exception as exc:  # sqlalchemy's ArgumentError; never echo the URL (password)
        raise ConfigError(f"DATABASE_URL is not a valid URL: {type(exc).__name__}") from None
    if url.port is not None and not 0 < url.port < 65536:
        # the socket refused it later with an OverflowError traceback
        raise ConfigError(f"DATABASE_URL: port {url.port} is not a TCP port (1-65535)")
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key.strip().lower()] = value
    sslmode = params.pop("sslmode", None)
    ssl_alias = params.pop("ssl", None)  # asyncpg/SQLAlchemy style: ?ssl=require or ?ssl=true
    if sslmode is None and ssl_alias is not None:
        alias = ssl_alias.lower()
        sslmode = "require" if alias in _TRUE else "disable" if alias in ("0", "false") else alias
    if sslmode is not None:
        sslmode = sslmode.lower()
        if sslmode not in SSL_MODES:
            raise ConfigError(
                f"DATABASE_URL: sslmode={sslmode!r} is not one of {', '.join(SSL_MODES)}"
            )
    rootcert = params.pop("sslrootcert", None) or os.environ.get("PGSSLROOTCERT") or None
    if rootcert is not None and rootcert != "system":
        rootcert = str(Path(unquote(rootcert)).expanduser())
    if rootcert == "system" and sslmode is None:
        sslmode = "verify-full"  # libpq 16: the system store implies host-name checking
    channel_binding = params.pop("channel_binding", None)
    if channel_binding is not None and channel_binding.lower() == "require":
        log.warning(
            "DATABASE_URL has channel_binding=require, which asyncpg cannot do; connecting "
            "with SCRAM without channel binding (TLS per sslmode=%s still applies)",
            sslmode or "prefer",
        )
    pgbouncer = params.pop("pgbouncer", None)
    pooled = is_pooled_host(url.host) or (pgbouncer or "").lower() in _TRUE
    extra: dict[str, Any] = {}
    timeout = params.pop("connect_timeout", None)
    if timeout:
        extra["timeout"] = _number("connect_timeout", timeout, float)
    for key in ("target_session_attrs", "passfile", "krbsrvname", "gsslib", "sslnegotiation"):
        if key in params:
            extra[key] = params.pop(key)
    if "user" in params and url.username is None:
        url = url.set(username=params.pop("user"))
    if "password" in params and url.password is None:
        url = url.set(password=params.pop("password"))
    if "host" in params and url.host is None:
        url = url.set(host=params.pop("host"))
    if "port" in params and url.port is None:
        url = url.set(port=_number("port", params.pop("port"), int))
    if "dbname" in params and url.database is None:
        url = url.set(database=params.pop("dbname"))
    # SQLAlchemy-only parameters pasted into the URL: not server settings
    params.pop("prepared_statement_cache_size", None)
    return PgConnect(
        url=url.set(query={}),
        sslmode=sslmode,
        sslrootcert=rootcert,
        sslcert=_path(params.pop("sslcert", None)),
        sslkey=_path(params.pop("sslkey", None)),
        sslpassword=params.pop("sslpassword", None),
        sslcrl=_path(params.pop("sslcrl", None)),
        pooled=pooled,
        options=params.pop("options", None),
        server_settings=params,
        extra=extra,
    )


def _userinfo_at_encoded(base: str) -> str:
    """Percent-encode any "@" inside the user name or password of `base`.

    A host never holds "@", so the last one in the authority ends the user info (as libpq
    reads it). SQLAlchemy split at the first: `app:p@ss@db` gave password "p" and host
    "ss@db", which then appeared in connection errors, the end of the password with it.
    """
    scheme, sep, rest = base.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or authority.count("@") < 2:
        return base
    userinfo, _, hostport = authority.rpartition("@")
    return f"{scheme}://{userinfo.replace('@', '%40')}@{hostport}{slash}{path}"


_NOT_A_URL = (
    "DATABASE_URL is not a valid URL (a bracketed IPv6 host must be closed; characters such "
    "as @ : / [ ] in the user name or password must be percent-encoded)"
)


def _number(name: str, value: str, kind: Callable[[str], _N]) -> _N:
    """Return the URL parameter `name` as a number, or a ConfigError naming only it."""
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"DATABASE_URL: {name} must be a number") from None


def _path(value: str | None) -> str | None:
    return None if not value else str(Path(value).expanduser())
