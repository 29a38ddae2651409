from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "studyapp.feedback"
    label = "feedback"
