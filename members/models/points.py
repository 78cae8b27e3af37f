"""points models (loyalty core)."""

__all__: list[str] = []
