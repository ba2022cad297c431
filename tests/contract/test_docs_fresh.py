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
