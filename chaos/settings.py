"""Settings of the processes a chaos run starts: the demo's, with pgevents' defaults.

Only what the run needs differs from a production-like set-up: the two watched channels,
``DEBUG`` off, and the channel layer chosen with ``CHAOS_LAYER`` (``core``: channels-redis'
list-based layer with the demo's capacity; ``pubsub``: ``pgevents.layers.PubSubChannelLayer``,
the demo's layer).
Timings (poll interval, backoff, timeouts) are pgevents' defaults, so the gap-closing times
a run reports are the ones a deployment with default settings would see.
"""

import os

from demo_project.settings import *  # noqa: F403

DEBUG = False
PGEVENTS = {"CHANNELS": ["chaos_a", "chaos_b"]}

_BACKENDS = {"core": "channels_redis.core.RedisChannelLayer", "pubsub": "pgevents.layers.PubSubChannelLayer"}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": _BACKENDS[os.environ.get("CHAOS_LAYER", "core")],
        "CONFIG": {
            "hosts": [REDIS_URL],  # noqa: F405
            "prefix": os.environ.get("PGEVENTS_REDIS_PREFIX", "pgevents"),
            "capacity": 10_000,
        },
    }
}
