"""Settings for the uvicorn process the browser tests drive: the test settings, with static
files served from the source folders (no collectstatic step) and DEBUG still off."""

from studyapp.settings_test import *  # noqa: F403

WHITENOISE_USE_FINDERS = True
