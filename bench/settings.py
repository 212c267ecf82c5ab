"""Settings for the processes the benchmark starts: the demo's, quieter, with bench channels."""

import os

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")

from demo_project.settings import *  # noqa: F403

DEBUG = False
PGEVENTS = {
    "CHANNELS": ["bench", "bench_quiet", "bench_transient"],
    "POLL_INTERVAL": float(os.environ.get("PGEVENTS_BENCH_POLL", "1.0")),
}
LOGGING["loggers"]["pgevents"]["level"] = os.environ.get("PGEVENTS_LOG_LEVEL", "WARNING")  # noqa: F405

# --layer core / pubsub / pgpubsub: channels-redis' list-based or pub/sub layer, or pgevents'
# bounded variant of the latter (the demo's).
_LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "pgpubsub": "pgevents.layers.PubSubChannelLayer",
}
if os.environ.get("PGEVENTS_BENCH_LAYER") in _LAYERS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": _LAYERS[os.environ["PGEVENTS_BENCH_LAYER"]],
            "CONFIG": {
                "hosts": [REDIS_URL],  # noqa: F405
                "prefix": os.environ.get("PGEVENTS_REDIS_PREFIX", "pgevents"),
                **({"capacity": 10_000} if os.environ["PGEVENTS_BENCH_LAYER"] != "pubsub" else {}),
            },
        }
    }
