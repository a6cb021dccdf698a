"""certkit."""
