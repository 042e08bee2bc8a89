"""The operator UI: server-rendered pages and htmx fragments over selectors and services."""
