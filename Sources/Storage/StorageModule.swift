// Storage: Store API over PostgreSQL (libpq) and SQLite (issue 4). Placeholder until it lands.
