from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/<slug:slug>/exports/", include("studyapp.exports.urls")),
    path("dashboard/", include("studyapp.dashboards.urls")),
    path("", include("studyapp.participants.urls")),
    path("", include("studyapp.writing.urls")),
    path("", include("studyapp.feedback.urls")),
]

# Lost participants (no participation in this browser, stale links) get a page that sends them
# back to their platform link.
handler404 = "studyapp.participants.views.not_found"
