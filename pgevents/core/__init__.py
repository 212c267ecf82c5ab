"""Pure code: names, SQL text, the wire format, client messages, filters. No I/O, no Django database."""
