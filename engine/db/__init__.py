"""The one SQLite database: connection factory, migrations, settings."""
