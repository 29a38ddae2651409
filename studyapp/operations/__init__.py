"""What a process manager and a monitoring system ask of a running app: is the process up
(``/healthz``), can it serve a study (``/readyz``: database, Redis, each arm's model server),
and how is it doing (``/metrics``, Prometheus). See docs/operations.md."""
