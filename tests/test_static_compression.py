"""Static files are compressed by collectstatic and served compressed by WhiteNoise."""

import gzip

from django.core.management import call_command
from django.test import Client, override_settings


def test_collectstatic_writes_gzip_copies_that_whitenoise_serves(tmp_path, settings):
    root = tmp_path / "static"
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", "--noinput", "-v0")
        assert (root / "js" / "dashboard.js.gz").is_file()
        assert (root / "css" / "site.css.gz").is_file()
        # WhiteNoise indexes STATIC_ROOT when its middleware is built: a fresh client builds it.
        response = Client().get("/static/js/dashboard.js", HTTP_ACCEPT_ENCODING="gzip")
    body = b"".join(response.streaming_content)
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == (root / "js" / "dashboard.js").read_bytes()
