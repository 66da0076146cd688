"""HTTP clients for the two peers. They know HTTP, not mappings."""
