"""The REST API (``/api/v1/``): DRF views that call services and selectors only."""
