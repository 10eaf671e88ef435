"""Domain rules: the registries of contracts, job definitions, action profiles and runs.

Each registry takes plain typed stores (``dq_stores.typed``) and holds the rules of
its artifact; none opens a backend or knows an adapter. The composition root in
:mod:`dq_registries.wiring` builds them.
"""
