"""`parse_database_url`: every URL form users paste becomes a SQLAlchemy URL + asyncpg kwargs."""

from __future__ import annotations

import re
import ssl

import pytest
from pydantic import SecretStr

from perpsignal_common.db.url import parse_database_url
from perpsignal_common.errors import ConfigError
from perpsignal_common.settings import DatabaseSettings

NEON_POOLED = (
    "postgresql://alex:AbC123dEf@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/dbname"
    "?sslmode=require&channel_binding=require"
)


@pytest.mark.parametrize(
    "scheme", ["postgres", "postgresql", "postgresql+asyncpg", "postgres+asyncpg"]
)
def test_every_scheme_becomes_asyncpg_and_keeps_the_password(scheme: str) -> None:
    got = parse_database_url(f"{scheme}://u:p%40ss@db.example:6543/app?sslmode=require")
    assert got.sqlalchemy_url.drivername == "postgresql+asyncpg"
    assert got.sqlalchemy_url.query == {}  # nothing asyncpg.connect() would reject
    assert got.dsn == "postgresql://u:p%40ss@db.example:6543/app"


def test_neon_pooled_host_disables_statement_caches() -> None:
    got = parse_database_url(NEON_POOLED)
    assert got.pooled
    assert got.asyncpg_kwargs()["statement_cache_size"] == 0
    assert got.sqlalchemy_url.query == {"prepared_statement_cache_size": "0"}
    names = got.sqlalchemy_connect_args()["prepared_statement_name_func"]
    assert names() != names()  # unique names: PgBouncer may switch server connections


def test_neon_direct_host_keeps_the_statement_cache() -> None:
    got = parse_database_url(NEON_POOLED.replace("-pooler", ""))
    assert not got.pooled
    assert "statement_cache_size" not in got.asyncpg_kwargs()


@pytest.mark.parametrize(
    ("mode", "expected"), [("disable", False), ("allow", "allow"), ("prefer", "prefer")]
)
def test_modes_below_require_are_passed_as_asyncpg_modes(mode: str, expected: object) -> None:
    assert parse_database_url(f"postgresql://h/d?sslmode={mode}").ssl_argument() == expected


def test_require_encrypts_without_checking_the_certificate() -> None:
    ctx = parse_database_url("postgresql://h/d?sslmode=require").ssl_argument()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_verify_ca_and_verify_full_with_the_system_store() -> None:
    ca = parse_database_url("postgresql://h/d?sslmode=verify-ca&sslrootcert=system")
    full = parse_database_url("postgresql://h/d?sslrootcert=system")  # libpq: implies verify-full
    ca_ctx, full_ctx = ca.ssl_argument(), full.ssl_argument()
    assert isinstance(ca_ctx, ssl.SSLContext) and isinstance(full_ctx, ssl.SSLContext)
    assert ca_ctx.verify_mode == ssl.CERT_REQUIRED and not ca_ctx.check_hostname
    assert full.sslmode == "verify-full" and full_ctx.check_hostname


def test_asyncpg_style_ssl_parameter_is_understood() -> None:
    assert parse_database_url("postgresql+asyncpg://h/d?ssl=require").sslmode == "require"
    assert parse_database_url("postgresql+asyncpg://h/d?ssl=true").sslmode == "require"


def test_options_and_other_parameters_become_startup_settings() -> None:
    got = parse_database_url(
        "postgresql://h/d?options=-c%20search_path%3Dx&application_name=ps&connect_timeout=7"
    )
    kwargs = got.asyncpg_kwargs({"statement_timeout": "5000"})
    assert kwargs["server_settings"] == {
        "options": "-c search_path=x",
        "application_name": "ps",
        "statement_timeout": "5000",
    }
    assert kwargs["timeout"] == 7.0


def test_channel_binding_require_is_accepted_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got = parse_database_url(NEON_POOLED)
    assert "channel_binding" not in got.asyncpg_kwargs().get("server_settings", {})
    assert "channel_binding=require" in caplog.text
    assert "AbC123dEf" not in caplog.text


def test_a_bad_sslmode_fails_at_settings_load_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="verify-full") as err:
        DatabaseSettings(database_url=SecretStr("postgresql://u:hunter2@h/d?sslmode=requried"))
    assert "hunter2" not in str(err.value)


def test_a_non_postgres_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="not PostgreSQL"):
        parse_database_url("mysql://u:p@h/d")


def test_missing_root_certificate_file_is_a_clear_config_error() -> None:
    got = parse_database_url("postgresql://h/d?sslmode=verify-full&sslrootcert=/nope/ca.pem")
    with pytest.raises(ConfigError, match=re.escape("sslrootcert='/nope/ca.pem'")):
        got.ssl_argument()


@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_staging_and_prod_refuse_a_database_reached_without_tls(
    environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka without TLS was refused there, the database was not: libpq's default `prefer`
    lets a man in the middle refuse TLS and read the login and every row."""
    from perpsignal_common.settings import KafkaSettings
    from perpsignal_outcomes.settings import OutcomesSettings

    monkeypatch.delenv("PGSSLMODE", raising=False)
    tls = KafkaSettings(kafka_security_protocol="SASL_SSL")

    def settings(url: str) -> OutcomesSettings:
        db = DatabaseSettings(database_url=SecretStr(url))
        return OutcomesSettings(environment=environment, kafka=tls, database=db)

    for url in (
        "postgresql://app:s3cret-pw@db.internal:5432/perpsignal",
        "postgresql://app:s3cret-pw@10.0.0.7/perpsignal?sslmode=prefer",
        "postgres://app:s3cret-pw@db.internal/perpsignal?sslmode=disable",
    ):
        with pytest.raises(ConfigError, match="requires TLS to the database") as exc:
            settings(url)
        assert "s3cret-pw" not in str(exc.value) and "sslmode=verify-full" in str(exc.value)
    # TLS asked for, or a connection that never leaves the machine: accepted
    for url in (
        "postgresql://app:pw@db.internal/perpsignal?sslmode=require",
        "postgresql://app:pw@db.internal/perpsignal?sslmode=verify-full&sslrootcert=system",
        "postgresql://app:pw@127.0.0.1:5432/perpsignal",
        "postgresql://app:pw@localhost/perpsignal",
        "postgresql://app:pw@[::1]/perpsignal",
        "postgresql://app:pw@/perpsignal?host=/var/run/postgresql",
    ):
        assert settings(url).environment == environment
    monkeypatch.setenv("PGSSLMODE", "verify-ca")  # asyncpg reads it when the URL is silent
    assert settings("postgresql://app:pw@db.internal/perpsignal").environment == environment
    # dev keeps working against any database
    assert OutcomesSettings(
        database=DatabaseSettings(database_url=SecretStr("postgresql://a:b@db.internal/x"))
    )


@pytest.mark.parametrize(
    ("url", "named"),
    [
        # a typo in the bracketed IPv6 host
        ("postgresql://app:hunter2@[2001:db8::5/perpsignal", "not a valid URL"),
        ("postgresql://app:hunter2@db.example/perpsignal?connect_timeout=10s", "connect_timeout"),
        ("postgresql:///perpsignal?user=app&password=hunter2&host=db&port=5432x", "port"),
    ],
)
def test_a_malformed_url_fails_at_settings_load_without_the_password(
    url: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # these raised a ValueError inside the settings validator: pydantic's ValidationError
    # then printed the environment's value, password and all, on the start-up error
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError, match=named) as err:
        DatabaseSettings()
    assert "hunter2" not in str(err.value) and "hunter2" not in repr(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_an_unencoded_at_in_the_password_stays_in_the_password() -> None:
    """`app:p@ss@db` gave password "p" and host "ss@db": a failed connection then named the
    host, and with it the end of the password, in the log line. libpq ends the user info at
    the last "@" (a host never holds one); so does the parse now."""
    parsed = parse_database_url("postgresql://app:p@ss@w0rd@db.example:6432/app")
    assert (parsed.url.username, parsed.url.password) == ("app", "p@ss@w0rd")
    assert (parsed.url.host, parsed.url.port, parsed.url.database) == ("db.example", 6432, "app")
    assert "ss" not in str(parsed.url.host)
    encoded = parse_database_url("postgresql://app:p%40ss%40w0rd@db.example:6432/app")
    assert encoded.url == parsed.url


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_a_port_outside_tcp_is_refused_naming_it_and_not_the_password(port: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_database_url(f"postgresql://app:s3cret@db.example:{port}/app")
    assert f"port {port} is not a TCP port" in str(refused.value)
    assert "s3cret" not in str(refused.value)
