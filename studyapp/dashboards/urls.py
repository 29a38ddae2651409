from django.urls import path

from studyapp.dashboards import rating, scoring, views

app_name = "dashboards"
urlpatterns = [
    path("", views.index, name="index"),
    path("vendor/plotly.min.js", views.plotly_js, name="plotly_js"),
    path("<slug:slug>/", views.study, name="study"),
    path("<slug:slug>/unlock-primary/", views.unlock_primary, name="unlock_primary"),
    path("<slug:slug>/monitor.json", views.monitor, name="monitor"),
    path("<slug:slug>/rate/", rating.rate, name="rate"),
    path("<slug:slug>/score/", scoring.score, name="score"),
    path("<slug:slug>/scoring.json", scoring.progress, name="scoring_progress"),
    path("<slug:slug>/p/<uuid:public_id>/", views.conversation, name="conversation"),
    path("<slug:slug>/p/<uuid:public_id>/decide/", views.decide, name="decide"),
]
