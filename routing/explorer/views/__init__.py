"""Explorer views, one module per screen; each renders a page or its fragment."""
