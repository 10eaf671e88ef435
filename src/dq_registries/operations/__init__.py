"""What operators run against a deployment: ``doctor`` (health checks),
``retention`` (``dq gc``) and ``transfer`` (export, import, migrate, verify)."""
