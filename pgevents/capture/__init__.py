"""What runs in ``manage.py runlisten`` (or inside the server with the embedded listener): LISTEN, sequence, publish."""
