"""ragline: multi-tenant retrieval backend for serverless functions."""

__version__ = "0.1.0"
