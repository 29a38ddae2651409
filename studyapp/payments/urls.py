from django.urls import path

from studyapp.payments import views

app_name = "payments"
urlpatterns = [
    path("<str:action>/", views.prolific_action, name="prolific_action"),
]
