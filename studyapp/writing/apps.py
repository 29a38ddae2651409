from django.apps import AppConfig


class WritingConfig(AppConfig):
    name = "studyapp.writing"
    label = "writing"
