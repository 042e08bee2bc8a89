"""Write-side use cases: keyword-only, atomic functions named ``<entity>_<action>``."""
