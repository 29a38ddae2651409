"""Mounted at /dashboard/<slug>/exports/ (studyapp/urls.py)."""

from django.urls import path

from studyapp.exports import views

app_name = "exports"
urlpatterns = [
    path("", views.start, name="start"),
    path("status.json", views.status, name="status"),
    path("<int:job_id>/download/", views.download, name="download"),
    path("<int:job_id>/retry/", views.retry, name="retry"),
    path("<int:job_id>/cancel/", views.cancel, name="cancel"),
]
