"""Synthetic demo data (placeholder, replaced below)."""

from api.container import Container


def seed_demo(container: Container, *, patients: int, seed: int) -> str:
    raise NotImplementedError
