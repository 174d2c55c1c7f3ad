"""Developer tools, never packaged into a function: the `ragline` CLI, the local stack
(`devstack`), the embedded Postgres server (`embedded`), migrations (`migrate`), the demo and its
corpus, seeding and function packaging. May import every other layer."""
