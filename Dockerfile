# The app's image: web (uvicorn), Celery worker and beat, and the one-shot migration all run it
# (deploy/compose.yaml, deploy/k8s/). Built from the repository root: docker build -t collabstudy .
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY . .
# The authors' prompt files come from their wheel, without its heavy dependencies.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip install --no-deps "collabllm==0.0.8" \
    && SECRET_KEY=build-only DEBUG=0 /opt/venv/bin/python manage.py collectstatic --noinput -v0

FROM python:3.11.7-slim-bookworm
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=app:app /app /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=studyapp.settings EXPORT_DIR=/data/exports
WORKDIR /app
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# One process per container: scale with replicas. The graceful shutdown drains streaming
# replies (SHUTDOWN_DRAIN_S), so the container's stop timeout must exceed it by about 15 s.
CMD ["python", "-m", "uvicorn", "studyapp.asgi:application", "--host", "0.0.0.0", \
     "--port", "8000", "--ws-per-message-deflate", "false", "--timeout-graceful-shutdown", "30", \
     "--proxy-headers", "--forwarded-allow-ips", "*"]
