"""Settings for the uvicorn processes the writing tests start: the project settings (so the
environment can slow the offline model), with static files served from the source folders."""

from studyapp.settings import *  # noqa: F403

WHITENOISE_USE_FINDERS = True
