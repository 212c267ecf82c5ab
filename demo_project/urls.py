from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from demo_project.library import views as library
from demo_project.people import views as people

urlpatterns = [
    path("", people.people, name="people"),
    path("people/row/<int:pk>/", people.person_row, name="person-row"),
    path("people/rows/", people.people_rows, name="people-rows"),
    path("people/count/", people.people_count, name="people-count"),
    path("people/per-user/", people.people_per_user, name="people-per-user"),
    path("people/newest/", people.people_newest, name="people-newest"),
    path("htmx/", people.people_htmx, name="people-htmx"),
    path("htmx/rows/", people.people_htmx_rows, name="people-htmx-rows"),
    path("books/", library.books, name="books"),
    path("books/row/<int:pk>/", library.book_row, name="book-row"),
    path("authors/row/<int:pk>/", library.author_row, name="author-row"),
    path("console/", people.console, name="console"),
    path("admin/", admin.site.urls),
    path("pgevents/", include("pgevents.urls")),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
]
