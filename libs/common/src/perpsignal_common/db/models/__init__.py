"""ORM models, one module per owning service (only the owner writes its tables)."""

from perpsignal_common.db.models import ingestor as ingestor
from perpsignal_common.db.models import notifier as notifier
from perpsignal_common.db.models import outcomes as outcomes
from perpsignal_common.db.models.common import ProcessedEvent

__all__ = ["ProcessedEvent"]
