from django.apps import AppConfig


class SideBySideConfig(AppConfig):
    name = "studyapp.sidebyside"
    label = "sidebyside"
