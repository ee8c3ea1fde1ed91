"""Placeholder entry; replaced by the real app."""


def main() -> None:
    raise SystemExit(0)
