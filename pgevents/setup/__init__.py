"""What runs at configuration time: installing triggers, sync, status, the admin's form."""
