from django.apps import AppConfig


class ErasureConfig(AppConfig):
    name = "studyapp.erasure"
    label = "erasure"
    verbose_name = "withdrawals and erasure"
