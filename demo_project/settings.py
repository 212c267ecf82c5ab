"""Settings of the pgevents demo. Everything comes from the environment, with defaults.

- ``DATABASE_URL``: PostgreSQL (default ``postgresql://postgres@127.0.0.1:5432/pgevents``;
  ``scripts/demo`` points it at an embedded server when none is running).
- ``REDIS_URL``: when set, channels-redis and a separate ``runlisten`` process; when unset,
  the in-memory layer and the listener inside the server process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .env import database_from_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "pgevents-demo-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "pgevents",
    "demo_project.people",
    "demo_project.library",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
ASGI_APPLICATION = "demo_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pgevents")),
}
# Parallel test runs (and CI next to a developer) can keep their databases apart.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("PGEVENTS_TEST_DB", "test_pgevents")}

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Redis pub/sub (one PUBLISH per message), bounded and reporting failures to the hub:
            # the fastest layer (docs/deployment.md). channels_redis.core.RedisChannelLayer also works.
            "BACKEND": "pgevents.layers.PubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": os.environ.get("PGEVENTS_REDIS_PREFIX", "pgevents"),
                # One receiving channel per server process (not per socket): room for bursts.
                "capacity": 10_000,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

PGEVENTS: dict[str, Any] = {
    "CHANNELS": ["people", "authors", "books", "demo", "chat"],
    # Channels relayed as plain NOTIFY (try `NOTIFY demo, 'hello'` on the console page). Any role that can connect
    # to the database can NOTIFY them: never list a channel a watch publishes on.
    "NOTIFY_CHANNELS": ["demo", "chat"],
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".static"
STATICFILES_DIRS = [BASE_DIR / "demo_project" / "static"]

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    # propagate=False: daphne gives the root logger a handler of its own, so a propagating
    # pgevents logger would print every line twice.
    "loggers": {
        "pgevents": {
            "handlers": ["console"],
            "level": os.environ.get("PGEVENTS_LOG_LEVEL", "INFO"),
            "propagate": False,
        }
    },
}
