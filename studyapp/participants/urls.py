from django.urls import path

from studyapp.participants import views

app_name = "participants"
urlpatterns = [
    path("study/<slug:slug>/", views.entry, name="entry"),
    path("study/<slug:slug>/consent/", views.consent, name="consent"),
    path("study/<slug:slug>/prewriting/", views.prewriting, name="prewriting"),
    path("study/<slug:slug>/presence/", views.presence, name="presence"),
]
