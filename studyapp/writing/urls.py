app_name = "writing"
urlpatterns: list = []
