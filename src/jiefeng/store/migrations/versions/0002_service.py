"""HTTP service: API keys, append-only audit log, policy versions, service secrets.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")
ID = sa.String(128)
TIME = sa.String(32)
KEY_ID = sa.String(32)
ROLES = sa.String(100)
SHA256_HEX = sa.String(64)

_SQLITE_GUARDS = [
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
]
_POSTGRES_GUARDS = [
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
       FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
       FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
]


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", KEY_ID, primary_key=True),
        sa.Column("name", ID, nullable=False),
        sa.Column("roles", ROLES, nullable=False),
        sa.Column("secret_sha256", SHA256_HEX, nullable=False),
        sa.Column("created_at_utc", TIME, nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("revoked_at_utc", TIME, nullable=True),
        sa.Column("revoked_by", ID, nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("at_utc", TIME, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor", ID, nullable=False),
        sa.Column("key_id", KEY_ID, nullable=True),
        sa.Column("roles", ROLES, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("target", ID, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
    )
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "seq"])
    op.create_table(
        "policies",
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("sha256", SHA256_HEX, nullable=False),
        sa.Column("uploaded_at_utc", TIME, nullable=False),
        sa.Column("uploaded_by", ID, nullable=False),
        sa.Column("activation_seq", sa.Integer, nullable=True),
        sa.Column("activated_at_utc", TIME, nullable=True),
        sa.Column("activated_by", ID, nullable=True),
    )
    op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at_utc", TIME, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    guards = {"sqlite": _SQLITE_GUARDS, "postgresql": _POSTGRES_GUARDS}.get(dialect, [])
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_table("service_secrets")
    op.drop_table("policies")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
