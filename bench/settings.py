"""The product's settings, plus the bench's bare view in the URLconf.

The driver runs with DEBUG=true in the environment only so that crmsync.settings generates its
local secrets (into a temporary CRMSYNC_VAR_DIR); requests are then served with DEBUG off, as in
production. With DEBUG on, Django keeps every query in memory, which charges the intake path
(four statements) more than the bare view (one) and skews the ratio.
"""

from crmsync.settings import *  # noqa: F401,F403
from crmsync.settings import LOGGING

DEBUG = False
ROOT_URLCONF = "bench.urls"

# Under load, INFO would write one JSON line per request from every gunicorn worker.
LOG_LEVEL = "WARNING"
LOGGING["root"]["level"] = LOG_LEVEL
