"""Settings for the fault campaign's servers: the project's settings, with each log line naming
its level, so that ERROR lines can be counted."""

from studyapp.settings import *  # noqa: F403

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"levelled": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "levelled"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},  # noqa: F405
}

# The campaign's servers speak plain HTTP on loopback, like the tests' servers.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
