from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "studyapp.scoring"
    label = "scoring"
