"""Test doubles, never packaged into a function and refused outside ENVIRONMENT=test: the
hashing embedder (`hashing`), fault injection for the end-to-end tests (`faults`) and
generated sample files for the extraction tests and bench (`documents`)."""
