"""The README's topic/configuration tables and .env.example are generated from the code."""

from __future__ import annotations

from perpsignal_cli import docs


def test_env_example_and_readme_tables_match_the_settings_and_topics() -> None:
    assert docs.main(["--check"]) == 0, "stale docs: run `uv run perpsignal docs`"


def test_every_setting_of_every_service_is_documented() -> None:
    text = (docs.REPO / ".env.example").read_text()
    names = {line.lstrip("# ").split("=", 1)[0] for line in text.splitlines() if "=" in line}
    for var in docs.collect():
        assert var.name in names, var.name
    for required in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "DATABASE_URL",
        "ENABLE_AI_JUDGE",
        "AI_JUDGE_TIMEOUT",
        "OPENAI_API_KEY",
        "TELEGRAM_BOT_TOKEN",
    ):
        assert required in names, required


def test_the_variables_the_gateway_reads_by_catalogue_name_are_documented() -> None:
    """The gateway reads each vendor's base URL, key and /invoke budget by the names its
    catalogues give: they were missing from the table (budgets, FEAR_GREED_BASE_URL) or
    listed as the ingestor's alone."""
    from perpsignal_connectors.catalog import load_catalogs
    from perpsignal_gateway.vendors import budget_env

    documented = {v.name: v for v in docs.collect()}
    for c in load_catalogs():
        budget = documented[budget_env(c)]
        assert (budget.default, budget.services) == (str(c.budget_per_min), ("gateway",))
        url = documented[c.base_url_env]
        assert url.default == c.base_url and "gateway" in url.services
        if c.key_env:
            assert documented[c.key_env].secret and "gateway" in documented[c.key_env].services
