"""Mounted at /dashboard/<slug>/p/<public_id>/erase/ (studyapp/urls.py)."""

from django.urls import path

from studyapp.erasure import views

app_name = "erasure"
urlpatterns = [
    path("<slug:slug>/p/<uuid:public_id>/erase/", views.erase, name="erase"),
]
