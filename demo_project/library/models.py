from django.db import models


class Author(models.Model):
    name = models.TextField()

    class Meta:
        db_table = "authors"
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.TextField()
    year = models.IntegerField(null=True)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books", db_column="author_id")

    class Meta:
        db_table = "books"
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title
