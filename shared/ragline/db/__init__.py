"""Postgres: the engine and pool (`engine`), the SQLAlchemy models (`models`), the tenancy layer
every tenant query goes through (`tenancy`), keyset pagination (`pagination`) and orgs. Below
the domain packages and above `cloud`, whose connection factories (Cloud SQL, RDS) the engine
may use. No HTTP, no queues, no embeddings here."""
