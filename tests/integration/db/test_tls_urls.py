"""Database URLs as users paste them, against a real PostgreSQL reached over TLS.

The embedded PostgreSQL wheel is built without OpenSSL ("SSL is not supported by this build"),
so TLS is served by a small proxy in front of it that speaks PostgreSQL's SSLRequest
negotiation exactly as a TLS-enabled server does (answers `S`, then TLS with a certificate
signed by a CA made here with the openssl CLI; a second CA is "the wrong CA"). asyncpg's
whole TLS path runs: negotiation, handshake, chain and host-name checks. Before the URL
parser, `postgresql://...?sslmode=require` raised TypeError inside asyncpg.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import struct
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from perpsignal_common.db.engine import create_engine
from perpsignal_common.db.migrate import upgrade
from perpsignal_common.settings import DatabaseSettings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d,
    )  # fmt: skip


def _make_server_cert(d: Path, ca: str) -> None:
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr", cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=d,
    )  # fmt: skip


@dataclass
class TlsProxy:
    """PostgreSQL's TLS negotiation in front of a plain server; counts sessions by kind."""

    upstream: tuple[str, int]
    context: ssl.SSLContext
    port: int = 0
    sessions: list[str] = field(default_factory=list)  # "tls" or "plain", one per connection
    _loop: asyncio.AbstractEventLoop | None = None

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            dst.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readexactly(8)
            _, code = struct.unpack("!ii", head)
            kind = "plain"
            if code == GSSENC_REQUEST:
                writer.write(b"N")
                head = await reader.readexactly(8)
                _, code = struct.unpack("!ii", head)
            if code == SSL_REQUEST:
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.context)
                kind, head = "tls", b""
            self.sessions.append(kind)
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            up_writer.write(head)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            server = loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            server.close()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)


@dataclass
class TlsServer:
    proxy: TlsProxy
    database: str
    ca: Path
    wrong_ca: Path

    def url(self, query: str, *, scheme: str = "postgresql", host: str = "127.0.0.1") -> str:
        return f"{scheme}://postgres:secret@{host}:{self.proxy.port}/{self.database}?{query}"


@pytest.fixture(scope="module")
def certs() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="perpsignal-tls-"))
    _make_ca(root, "ca")
    _make_ca(root, "wrong")
    _make_server_cert(root, "ca")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_proxy(pg_server, certs: Path) -> Iterator[TlsProxy]:  # type: ignore[no-untyped-def]
    parts = urlsplit(pg_server.admin_url)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs / "server.crt", certs / "server.key")
    proxy = TlsProxy((parts.hostname or "127.0.0.1", parts.port or 5432), ctx)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
async def tls(pg_server, tls_proxy: TlsProxy, certs: Path) -> AsyncIterator[TlsServer]:  # type: ignore[no-untyped-def]
    """A fresh empty database behind the TLS proxy; the proxy's session log cleared."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    await pg_server.create(name)
    tls_proxy.sessions.clear()
    try:
        yield TlsServer(tls_proxy, name, certs / "ca.crt", certs / "wrong.crt")
    finally:
        await pg_server.drop(name)


async def _connect(url: str) -> None:
    engine = create_engine(DatabaseSettings(database_url=SecretStr(url)), pool_size=1)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_sslmode_require_connects_over_tls(tls: TlsServer) -> None:
    """The regression: this URL raised TypeError (sslmode handed to asyncpg as a keyword)."""
    await _connect(tls.url("sslmode=require"))
    assert tls.proxy.sessions == ["tls"]


async def test_postgres_scheme_and_channel_binding_as_neon_prints_them(tls: TlsServer) -> None:
    await _connect(tls.url("sslmode=require&channel_binding=require", scheme="postgres"))
    assert tls.proxy.sessions == ["tls"]


async def test_verify_full_with_the_right_ca_connects(tls: TlsServer) -> None:
    await _connect(tls.url(f"sslmode=verify-full&sslrootcert={tls.ca}"))
    await _connect(tls.url(f"sslmode=verify-full&sslrootcert={tls.ca}", host="localhost"))
    await _connect(tls.url(f"sslmode=verify-ca&sslrootcert={tls.ca}"))
    assert tls.proxy.sessions == ["tls", "tls", "tls"]


async def test_verify_full_with_a_wrong_ca_fails_saying_why(tls: TlsServer) -> None:
    url = tls.url(f"sslmode=verify-full&sslrootcert={tls.wrong_ca}")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await _connect(url)


async def test_require_with_a_root_certificate_checks_it_as_libpq_does(tls: TlsServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await _connect(tls.url(f"sslmode=require&sslrootcert={tls.wrong_ca}"))


async def test_verify_full_without_a_ca_is_a_config_error_naming_sslrootcert(
    tls: TlsServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from perpsignal_common.errors import ConfigError

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    with pytest.raises(ConfigError, match="sslrootcert"):
        await _connect(tls.url("sslmode=verify-full"))


async def test_sslmode_disable_and_prefer(tls: TlsServer) -> None:
    await _connect(tls.url("sslmode=disable"))
    await _connect(tls.url("sslmode=prefer"))
    assert tls.proxy.sessions == ["plain", "tls"]


async def test_options_reach_the_server(tls: TlsServer) -> None:
    url = tls.url("sslmode=require&options=-c%20search_path%3Dmyschema,public")
    engine = create_engine(DatabaseSettings(database_url=SecretStr(url)), pool_size=1)
    try:
        async with engine.connect() as conn:
            path = (await conn.execute(text("show search_path"))).scalar_one()
            assert path == "myschema,public"
            timeout = (await conn.execute(text("show statement_timeout"))).scalar_one()
            assert timeout == "5s"  # our own server setting survives the merge
    finally:
        await engine.dispose()


async def test_pooled_url_turns_statement_caches_off_and_queries_run(tls: TlsServer) -> None:
    """`pgbouncer=true` (as a Neon -pooler host): no asyncpg statement cache; queries run."""
    url = tls.url("sslmode=require&pgbouncer=true")
    engine = create_engine(DatabaseSettings(database_url=SecretStr(url)), pool_size=1)
    try:
        async with engine.connect() as conn:
            for i in range(3):
                got = await conn.execute(text("select cast(:x as int) + 1"), {"x": i})
                assert got.scalar_one() == i + 1
            raw = await conn.get_raw_connection()
            asyncpg_conn = raw.driver_connection
            assert asyncpg_conn is not None
            assert asyncpg_conn._stmt_cache.get_max_size() == 0
    finally:
        await engine.dispose()


async def test_migrations_and_the_outcomes_writer_pool_take_the_same_url(
    tls: TlsServer,
) -> None:
    from perpsignal_outcomes.repository import SignalWriter

    url = tls.url(f"sslmode=verify-full&sslrootcert={tls.ca}")
    await asyncio.to_thread(upgrade, url)
    assert tls.proxy.sessions == ["tls"]
    writer = SignalWriter(url, {"1h": 3600}, timedelta(0))
    try:
        pool = await writer._get_pool()
        assert await pool.fetchval("select count(*) from alembic_version") >= 1
        assert tls.proxy.sessions == ["tls", "tls"]
    finally:
        await writer.close()


async def test_notifier_ledger_pool_takes_the_configured_url(tls: TlsServer) -> None:
    from perpsignal_notifier.repository import NotifierRepository

    url = tls.url(f"sslmode=verify-full&sslrootcert={tls.ca}")
    engine = create_engine(DatabaseSettings(database_url=SecretStr(url)), pool_size=1)
    repo = NotifierRepository(engine, database_url=url)
    try:
        async with repo._ledger() as conn:
            assert await conn.fetchval("select 1") == 1
        assert tls.proxy.sessions == ["tls"]
    finally:
        await repo.close()
        await engine.dispose()


async def test_a_service_session_with_the_wrong_ca_says_what_to_check(tls: TlsServer) -> None:
    from perpsignal_common.db.engine import create_sessionmaker, session_scope
    from perpsignal_common.errors import DependencyUnavailable

    url = tls.url(f"sslmode=verify-full&sslrootcert={tls.wrong_ca}")
    engine = create_engine(DatabaseSettings(database_url=SecretStr(url)), pool_size=1)
    try:
        with pytest.raises(DependencyUnavailable, match=r"certificate verify failed.*sslrootcert"):
            async with session_scope(create_sessionmaker(engine)) as s:
                await s.execute(text("select 1"))
    finally:
        await engine.dispose()
