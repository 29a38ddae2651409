from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "studyapp.dashboards"
    label = "dashboards"
