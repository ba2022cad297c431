"""alternative.me Fear & Greed. Docs: https://alternative.me/crypto/fear-and-greed-index/#api"""

from __future__ import annotations

from perpsignal_connectors.http import Endpoint
from perpsignal_connectors.ratelimit import Quota

VENDOR = "alternative_me"
URL = "https://api.alternative.me/fng/"
# The page asks for about 60 requests per minute; the value changes once a day
QUOTA = Quota("requests_1m", 60, 60.0)
FNG = Endpoint("fng", "/", {QUOTA.name: 1})
