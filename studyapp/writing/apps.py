from django.apps import AppConfig
from django.conf import settings

from studyapp.realtime import lifespan


class WritingConfig(AppConfig):
    name = "studyapp.writing"
    label = "writing"

    def ready(self) -> None:
        from collab_models.transport import set_fast_http

        set_fast_http(settings.COLLAB_MODELS_FAST_HTTP)
        lifespan.on_startup(_sweep_lost_replies)
        lifespan.on_shutdown(_drain_replies)


# The relay is imported when the server runs, not when any process sets Django up (the database
# workers, Celery and management commands do too and never relay a reply).
async def _sweep_lost_replies() -> None:
    from studyapp.writing.lost import lost_sweep

    await lost_sweep()


async def _drain_replies() -> None:
    from studyapp.realtime.generations import generations_drain

    await generations_drain(settings.SHUTDOWN_DRAIN_S)
