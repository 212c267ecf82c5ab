from django.contrib import admin
from django.urls import include, path

from demo_project.people import views

urlpatterns = [
    path("", views.people, name="people"),
    path("people/rows/", views.people_rows, name="people-rows"),
    path("people/row/<int:pk>/", views.person_row, name="person-row"),
    path("console/", views.console, name="console"),
    path("admin/", admin.site.urls),
    path("pgevents/", include("pgevents.urls")),
]
