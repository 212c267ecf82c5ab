from django.db import models


class Person(models.Model):
    """The seed walkthrough's ``people`` table, created by SQL exactly as the walkthrough has it."""

    person_id = models.AutoField(primary_key=True, db_column="pk")
    ts = models.DateTimeField(null=True)
    name = models.TextField(null=True)
    age = models.IntegerField(null=True)
    height = models.FloatField(null=True)

    class Meta:
        managed = False
        db_table = "people"
        ordering = ["person_id"]

    def __str__(self) -> str:
        return self.name or f"person {self.person_id}"
