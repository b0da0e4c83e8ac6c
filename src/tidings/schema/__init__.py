"""Schema evolution: compatibility rules over JSON Schema, the lock file, AsyncAPI documents.

`compat` holds the pure rules (no pydantic); `events` turns an app's Event classes into
JSON Schemas; `lock` reads, updates and checks ``tidings.schema.lock``; `asyncapi` writes
an AsyncAPI 3.0 document for one or more apps.
"""
