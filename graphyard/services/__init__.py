"""Services: the rules of assistants, threads, runs and the store, above storage and broker."""
