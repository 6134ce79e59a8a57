"""Sinks: where verdicts, IP-list changes and dead letters go. Each has ``add...()`` and ``flush()``;
the service commits input offsets only after every sink flushed (and the store wrote)."""
