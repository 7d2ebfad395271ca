"""Search (issue 11): the events' generated tsvector reads the text with its punctuation turned to
spaces, so that an email, a URL or `snake_case` is words too (PostgreSQL's parser would keep each
whole), as SQLite's search sees them. PostgreSQL only; the column is rebuilt with its index."""

from django.db import migrations

SPLIT = """
DROP INDEX IF EXISTS store_event_text_vector;
ALTER TABLE conversations_storedevent DROP COLUMN IF EXISTS text_vector;
ALTER TABLE conversations_storedevent
    ADD COLUMN text_vector tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig, regexp_replace(text, '[[:punct:]]+', ' ', 'g'))
    ) STORED;
CREATE INDEX store_event_text_vector ON conversations_storedevent USING gin (text_vector);
"""
WHOLE = """
DROP INDEX IF EXISTS store_event_text_vector;
ALTER TABLE conversations_storedevent DROP COLUMN IF EXISTS text_vector;
ALTER TABLE conversations_storedevent
    ADD COLUMN text_vector tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, text))
    STORED;
CREATE INDEX store_event_text_vector ON conversations_storedevent USING gin (text_vector);
"""


def split(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SPLIT)


def whole(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(WHOLE)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0007_audit_second_factor_actions")]

    operations = [migrations.RunPython(split, whole)]
