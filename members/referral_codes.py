"""Referral codes: short, and made of characters nobody confuses (no 0/O, 1/I/L)."""

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 8


def new_referral_code(rng=secrets) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(LENGTH))


def normalize_referral_code(raw: str) -> str:
    return (raw or "").strip().upper()
