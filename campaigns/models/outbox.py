"""outbox models."""

__all__: list[str] = []
