from django.contrib import admin
from django.urls import include, path

from demo_project.library import views as library
from demo_project.people import views as people

urlpatterns = [
    path("", people.people, name="people"),
    path("people/row/<int:pk>/", people.person_row, name="person-row"),
    path("books/", library.books, name="books"),
    path("books/row/<int:pk>/", library.book_row, name="book-row"),
    path("authors/row/<int:pk>/", library.author_row, name="author-row"),
    path("console/", people.console, name="console"),
    path("admin/", admin.site.urls),
    path("pgevents/", include("pgevents.urls")),
]
