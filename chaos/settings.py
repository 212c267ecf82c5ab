"""Settings of the processes a chaos run starts: the demo's, with pgevents' defaults.

Only what the run needs differs from a production-like set-up: the two watched channels,
``DEBUG`` off, and the channel layer chosen with ``CHAOS_LAYER`` (``core``: channels-redis'
list-based layer as the demo configures it; ``pubsub``: ``pgevents.layers.PubSubChannelLayer``).
Timings (poll interval, backoff, timeouts) are pgevents' defaults, so the gap-closing times
a run reports are the ones a deployment with default settings would see.
"""

import os

from demo_project.settings import *  # noqa: F403

DEBUG = False
PGEVENTS = {"CHANNELS": ["chaos_a", "chaos_b"]}

if os.environ.get("CHAOS_LAYER") == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "pgevents.layers.PubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("PGEVENTS_REDIS_PREFIX", "pgevents")},  # noqa: F405
        }
    }
