"""The chaos run: the production topology on loopback, a writer, resuming clients and a
fault schedule, and every client's stream compared with what the tables hold.

``scripts/chaos --help`` for the options; docs/chaos.md for what it checks and its figures.
"""
