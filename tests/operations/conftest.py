"""The writing tests' fake model server, for the readiness checks of the arms."""

from tests.writing.conftest import clean_transport, drain_generations, fake_vllm  # noqa: F401
