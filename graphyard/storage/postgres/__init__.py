"""PostgreSQL storage adapter."""
