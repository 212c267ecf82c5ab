from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Author, Book


def books(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "library/books.html",
        {"authors": Author.objects.all(), "books": Book.objects.select_related("author")},
    )


def book_row(request: HttpRequest, pk: int) -> HttpResponse:
    book = Book.objects.select_related("author").filter(pk=pk).first()
    if book is None:
        raise Http404("no such book")
    return render(request, "library/book_row.html", {"book": book})


def author_row(request: HttpRequest, pk: int) -> HttpResponse:
    author = Author.objects.filter(pk=pk).first()
    if author is None:
        raise Http404("no such author")
    return render(request, "library/author_row.html", {"author": author})
