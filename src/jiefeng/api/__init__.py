"""The HTTP API (FastAPI): `jiefeng.api.app.create_app(db, now)`; see docs/api.md."""
