"""Use cases: one module each, one transaction each, writing audit entries."""
