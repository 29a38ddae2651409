from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "studyapp.payments"
    label = "payments"
