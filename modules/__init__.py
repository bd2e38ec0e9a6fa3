"""Analysis modules loaded as plugins by name from the configuration."""
