"""finmon package."""
