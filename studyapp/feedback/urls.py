from django.urls import path

from studyapp.feedback import views

app_name = "feedback"
urlpatterns = [
    path("study/<slug:slug>/finish/", views.finish, name="finish"),
    path("study/<slug:slug>/final/", views.final, name="final"),
    path("study/<slug:slug>/done/", views.done, name="done"),
]
