"""coupons models."""

__all__: list[str] = []
