from django.urls import path

from studyapp.writing.consumers import WritingConsumer

websocket_urlpatterns = [
    path("ws/study/<slug:slug>/", WritingConsumer.as_asgi()),
]
