"""Test settings: the demo's, on real Redis (``REDIS_URL``, default the local server)."""

import os
from typing import Any

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
# Each run gets its own Redis key prefix, so parallel runs never see each other's events.
os.environ.setdefault("PGEVENTS_REDIS_PREFIX", f"pgevents-test-{os.getpid()}")

from demo_project.settings import *  # noqa: F403

PGEVENTS: dict[str, Any] = {
    "CHANNELS": ["people", "authors", "books", "demo", "chat", "Mixed Case", "sp ace", "q'uote", "ünï", "t.*"],
    # Plain NOTIFY is opt-in per channel. "people" is also a watched channel (pgevents.W014):
    # the tests check that a NOTIFY there stays a plain event that cannot pass for a row change.
    "NOTIFY_CHANNELS": ["people", "demo", "chat", "Mixed Case", "sp ace", "q'uote", "ünï"],
    "POLL_INTERVAL": 0.5,
    "MAX_BACKOFF": 2.0,
    "QUERY_TIMEOUT": 3.0,
    # The test process is no server: it opens and drops event loops, runtimes and database
    # connections by the hundred and relies on the collector to close what they leave in
    # reference cycles before the test database is dropped. Frozen objects and a young
    # threshold of 10,000 would keep them open (tests/unit/test_collector.py tests the tuning).
    "TUNE_GC": False,
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if os.environ.get("PGEVENTS_TEST_LAYER") == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Security tests: channels under "sec." exercise each policy on the shared stack;
# every other channel keeps allow_all.
PGEVENTS["CHANNELS"].append("sec.*")
PGEVENTS.update(
    {
        "AUTHORIZE": {
            "sec.login": "pgevents.policy.require_login",
            "sec.staff": "pgevents.policy.staff_only",
            "sec.perm.*": "pgevents.policy.require_permission",
            "sec.closed": "pgevents.policy.deny_all",
            "sec.owned": "pgevents.policy.require_login",
            "*": "pgevents.policy.allow_all",
        },
        "PERMISSIONS": {"sec.perm.explicit": "people.view_person"},
        "ROW_POLICY": "tests.hooks.own_rows",
        "SIGNED_CHANNELS": ["sec.signed.*"],
        "SESSION_CHECK_INTERVAL": 0.5,
    }
)
# A stack started with PGEVENTS_TEST_STRICT=1 has tight limits and an explicit origin list.
if os.environ.get("PGEVENTS_TEST_STRICT") == "1":
    PGEVENTS.update({"ALLOWED_ORIGINS": ["http://trusted.example"], "MAX_SEND_BUFFER": 64 * 1024})
if os.environ.get("PGEVENTS_TEST_CLOSE_GRACE"):
    PGEVENTS["CLOSE_GRACE"] = float(os.environ["PGEVENTS_TEST_CLOSE_GRACE"])
if os.environ.get("PGEVENTS_TEST_QUERY_TIMEOUT"):
    PGEVENTS["QUERY_TIMEOUT"] = float(os.environ["PGEVENTS_TEST_QUERY_TIMEOUT"])
if os.environ.get("PGEVENTS_METRICS_IPS"):
    PGEVENTS["METRICS_IPS"] = os.environ["PGEVENTS_METRICS_IPS"].split(",")
if os.environ.get("PGEVENTS_TEST_LAYER") == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "pgevents.layers.PubSubChannelLayer",
            "CONFIG": {
                # The client name lets a test find (and kill) this stack's own Redis connections.
                "hosts": [{"address": os.environ["REDIS_URL"], "client_name": os.environ["PGEVENTS_REDIS_PREFIX"]}],
                "prefix": os.environ["PGEVENTS_REDIS_PREFIX"],
            },
        }
    }
if os.environ.get("PGEVENTS_TEST_LAYER") == "core":  # channels-redis' list-based layer, still supported
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "prefix": os.environ["PGEVENTS_REDIS_PREFIX"]},
        }
    }
# A stack started with PGEVENTS_TEST_STALL=1 notices a missing listener within a second or two.
if os.environ.get("PGEVENTS_TEST_STALL") == "1":
    PGEVENTS.update({"HEARTBEAT_INTERVAL": 0.2, "STALL_TIMEOUT": 1.0})

# Counts what reaches Django when PGEVENTS_TEST_REQUEST_LOG names a file (tests.hooks.RequestLog).
MIDDLEWARE = [*MIDDLEWARE, "tests.hooks.RequestLog"]  # noqa: F405
# A benchmark's server that serves as a project's would: the collector set for many connections.
if os.environ.get("PGEVENTS_TEST_TUNE_GC") == "1":
    PGEVENTS["TUNE_GC"] = True
# A benchmark's probe of the delivery path (bench.trace), when PGEVENTS_BENCH_TRACE names its file.
if os.environ.get("PGEVENTS_BENCH_TRACE"):
    INSTALLED_APPS = [*INSTALLED_APPS, "bench.trace.Trace"]  # noqa: F405
