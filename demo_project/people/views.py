from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Person


def people(request: HttpRequest) -> HttpResponse:
    return render(request, "people/people.html", {"people": Person.objects.all()})


def people_rows(request: HttpRequest) -> HttpResponse:
    """The rows of the people table: what a shared region pushes after a burst or a reset."""
    return render(request, "people/rows.html", {"people": Person.objects.all()})


def people_count(request: HttpRequest) -> HttpResponse:
    """The count above the table, as the shared region renders it once per change."""
    return render(request, "people/count.html", {"people": Person.objects.all()})


def people_per_user(request: HttpRequest) -> HttpResponse:
    """The people table with per-user regions: every page fetches what a change needs, in one
    request for its three regions (``?jitter=`` sets how long it may wait, at random)."""
    try:
        jitter = min(max(int(request.GET.get("jitter", "100")), 0), 10_000)
    except ValueError:
        jitter = 100
    people = Person.objects.all()
    return render(
        request,
        "people/per_user.html",
        {"people": people, "newest": people.order_by("-person_id").first(), "jitter": jitter},
    )


def people_newest(request: HttpRequest) -> HttpResponse:
    """The newest person's name, a region of the per-user page."""
    return render(request, "people/newest.html", {"newest": Person.objects.order_by("-person_id").first()})


def people_htmx(request: HttpRequest) -> HttpResponse:
    """The people table for htmx, without the pgevents client."""
    return render(request, "people/htmx.html", {"people": Person.objects.all()})


def people_htmx_rows(request: HttpRequest) -> HttpResponse:
    """What the HTML stream swaps in: the rows, and the count out of band (``hx-swap-oob``)."""
    return render(request, "people/htmx_rows.html", {"people": Person.objects.all()})


def person_row(request: HttpRequest, pk: int) -> HttpResponse:
    """One row, as the live region fetches it (404: the row is gone, the region drops it)."""
    person = Person.objects.filter(person_id=pk).first()
    if person is None:
        raise Http404("no such person")
    return render(request, "people/row.html", {"person": person})


def console(request: HttpRequest) -> HttpResponse:
    return render(request, "console.html")
