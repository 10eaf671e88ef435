"""Configuration and the composition root: settings, backend plug-ins, the container
and ``DQContext``. The only part of ``dq_registries`` that names adapter modules."""
