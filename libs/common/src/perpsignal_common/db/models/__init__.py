"""ORM models, one module per owning service (only the owner writes its tables)."""

from perpsignal_common.db.models.common import ProcessedEvent

__all__ = ["ProcessedEvent"]
