"""Building pydantic models from values the domain's own bounded code produced.

The scorer and the judge build several models per signal (on a 1m backtest, 45,000
signals a month) from values that are already of the field's type and range. Validating
them again was a visible share of the run; `trusted` skips it. The public event contracts
stay pydantic models: only their construction is cheaper. Tests hold each result equal to
the validated model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

_M = TypeVar("_M", bound=BaseModel)
_new = object.__new__  # pydantic models define no __new__ of their own
# BaseModel's slot descriptors: setting them directly skips object.__setattr__'s lookup
_slots = BaseModel.__dict__
_set_dict = _slots["__dict__"].__set__
_set_fields_set = _slots["__pydantic_fields_set__"].__set__
_set_extra = _slots["__pydantic_extra__"].__set__
_set_private = _slots["__pydantic_private__"].__set__


def trusted(cls: type[_M], values: dict[str, Any], fields_set: Iterable[str]) -> _M:
    """Build `cls` from values our own bounded code produced, without re-validation.

    What `cls.model_construct(**values)` does, minus its per-field bookkeeping: `values`
    must hold every field (defaults included) in declaration order; `fields_set` names the
    fields a validated constructor would have been given (a fresh set is made of it).
    """
    m: _M = _new(cls)
    _set_dict(m, values)
    _set_fields_set(m, set(fields_set))
    _set_extra(m, None)
    _set_private(m, None)
    return m
