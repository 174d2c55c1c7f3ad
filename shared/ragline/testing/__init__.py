"""Test doubles, never packaged into a function and refused outside ENVIRONMENT=test: the
hashing embedder (`hashing`) and fault injection for the end-to-end tests (`faults`)."""
