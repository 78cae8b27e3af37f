"""referrals models (loyalty core)."""

__all__: list[str] = []
