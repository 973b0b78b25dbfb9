"""modules package."""
