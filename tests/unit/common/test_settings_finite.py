"""Every float setting of every service refuses `inf` and `nan` at start-up.

Both parse as floats and pass `ge`/`gt` bounds (inf >= 0), so before this e.g.
`OUTCOMES_NEUTRAL_BAND_PCT=inf` made every outcome NEUTRAL without a word, and a `nan`
timeout passed every `gt=0` bound check it was not compared against.
"""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from perpsignal_cli.docs import settings_classes
from perpsignal_common.settings import DatabaseSettings, KafkaSettings, OpsSettings


def _float_settings() -> list[tuple[type[BaseSettings], str]]:
    classes: list[type[BaseSettings]] = [KafkaSettings, DatabaseSettings, OpsSettings]
    classes += list(settings_classes().values())
    found = []
    for cls in classes:
        for name, field in cls.model_fields.items():
            ann = field.annotation
            if ann is float or (float in typing.get_args(ann)):
                found.append((cls, name))
    return found


FLOATS = _float_settings()


def test_the_services_have_float_settings_to_check() -> None:
    names = {name for _, name in FLOATS}
    assert "outcomes_neutral_band_pct" in names and len(names) > 20


@pytest.mark.parametrize("token", ["inf", "-inf", "nan"])
@pytest.mark.parametrize(("cls", "name"), FLOATS, ids=[f"{c.__name__}.{n}" for c, n in FLOATS])
def test_a_float_setting_refuses_non_finite_values(
    cls: type[BaseSettings], name: str, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name.upper(), token)
    with pytest.raises(ValidationError) as refused:
        cls()
    assert name in str(refused.value)
