"""The engine: scheduling, stores, per-site memory, applying and reconciling (one concern a module)."""
