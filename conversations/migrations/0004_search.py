"""Search (issue 11): searchable text on events, search keys, and on PostgreSQL a generated
tsvector column with a GIN index over the text (the model does not declare it: SQLite has no
tsvector, and search.py queries the column by name there only)."""

import django.db.models.deletion
from django.db import migrations, models

TEXT_VECTOR = """
ALTER TABLE conversations_storedevent
    ADD COLUMN text_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, text)) STORED;
CREATE INDEX store_event_text_vector ON conversations_storedevent USING gin (text_vector);
"""
DROP_TEXT_VECTOR = "ALTER TABLE conversations_storedevent DROP COLUMN text_vector;"


def text_vector(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TEXT_VECTOR)


def drop_text_vector(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TEXT_VECTOR)


def index_stored_history(apps, schema_editor):
    """Conversations stored before this migration become searchable. It uses the app's own
    indexer (not historical models) so that old and new rows get exactly the same keys."""
    from conversations.store import search_index
    from conversations.store.models import StoredConversation

    for conversation in StoredConversation.objects.iterator(chunk_size=200):
        search_index.reindex(conversation)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0003_conversation_read_through"),
    ]

    operations = [
        migrations.CreateModel(
            name="SearchKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("kind", models.CharField(max_length=8)),
                ("value", models.CharField(db_index=True, max_length=200)),
                ("label", models.CharField(max_length=200)),
            ],
        ),
        migrations.AddField(
            model_name="storedevent",
            name="text",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddIndex(
            model_name="storedevent",
            index=models.Index(fields=["conversation", "type"], name="store_event_type"),
        ),
        migrations.AddField(
            model_name="searchkey",
            name="conversation",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="search_keys",
                to="conversations.storedconversation",
            ),
        ),
        migrations.AddConstraint(
            model_name="searchkey",
            constraint=models.UniqueConstraint(
                fields=("conversation", "kind", "value"), name="store_search_key_unique"
            ),
        ),
        migrations.RunPython(text_vector, drop_text_vector),
        migrations.RunPython(index_stored_history, migrations.RunPython.noop),
    ]
