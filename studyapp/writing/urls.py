from django.urls import path

from studyapp.writing import views

app_name = "writing"
urlpatterns = [
    path("study/<slug:slug>/write/", views.page, name="page"),
]
