"""Mounted at /dashboard/<slug>/exports/ (studyapp/urls.py)."""

from django.urls import path

from studyapp.exports import views

app_name = "exports"
urlpatterns = [
    path("", views.start, name="start"),
    path("status.json", views.status, name="status"),
    path("<int:job_id>/download/", views.download, name="download"),
]
