"""triggers models."""

__all__: list[str] = []
