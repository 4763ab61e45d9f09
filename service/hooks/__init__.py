"""CDS Hooks protocol without Flask: request validation, prefetch, discovery, service calls."""
