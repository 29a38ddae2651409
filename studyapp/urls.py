from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # Pages without the base template's icon link (the admin) make browsers ask for this.
    path("favicon.ico", RedirectView.as_view(url=f"{settings.STATIC_URL}favicon.svg")),
    path("admin/", admin.site.urls),
    path("dashboard/<slug:slug>/exports/", include("studyapp.exports.urls")),
    path("dashboard/", include("studyapp.erasure.urls")),
    path("dashboard/<slug:slug>/prolific/", include("studyapp.payments.urls")),
    path("dashboard/", include("studyapp.dashboards.urls")),
    path("", include("studyapp.participants.urls")),
    path("", include("studyapp.writing.urls")),
    path("", include("studyapp.feedback.urls")),
]

# Lost participants (no participation in this browser, stale links) get a page that sends them
# back to their platform link.
handler404 = "studyapp.participants.views.not_found"
