"""Tests that drive the admin in a real (headless) browser."""
