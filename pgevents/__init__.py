"""pgevents: PostgreSQL row changes and NOTIFYs, live in the browser, through Django Channels."""

__version__ = "0.1.0"

__all__ = ["__version__"]
