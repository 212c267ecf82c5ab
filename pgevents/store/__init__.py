"""The database as every pgevents process uses it: connections, the event log, the catalog of watched columns."""
