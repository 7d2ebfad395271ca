"""The table of the default cache (ResilientDatabaseCache, when there is no CACHE_URL).

`migrate` is the one step every way of running the dashboard already takes (make run, make serve,
the tests, a deployment), so the table comes with it. createcachetable creates the tables of the
database caches in settings.CACHES that are missing, and leaves the others alone.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_tables(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = []

    operations = [migrations.RunPython(create_cache_tables, migrations.RunPython.noop)]
