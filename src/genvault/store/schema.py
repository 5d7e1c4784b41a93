"""The SQL schema, as SQLAlchemy Core tables: the one source the Alembic revisions must match.

The same tables run on SQLite (embedded default) and PostgreSQL (production); a test checks that
`alembic upgrade head` on an empty database of either kind yields exactly this metadata.

Conventions:
- Every row that holds user data carries `user_id`, so one statement per table exports or erases a
  user.
- Timestamps are timezone-aware UTC (`UTCDateTime`), also on SQLite, which has no time zones.
- Money is an integer count of nano-USD (1e-9 USD): exact, and sums in SQL without rounding.
- Client JSON inside messages (`JSONText` columns) distinguishes an absent key (SQL NULL) from
  JSON `null`, and keeps key order: a stored UIMessage must load back as the identical JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import DOMAIN, JSONB
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "GENERATION_KINDS",
    "GENERATION_STATUSES",
    "LIMIT_REFUSED",
    "LOCAL_USER_ID",
    "MISSING",
    "TERMINAL_STATUSES",
    "JSONText",
    "UTCDateTime",
    "api_keys",
    "audit_events",
    "blobs",
    "cache_entries",
    "chats",
    "data_tables",
    "feedback",
    "generations",
    "in_dialect",
    "limit_usage",
    "limits",
    "messages",
    "metadata",
    "owned_by",
    "parts",
    "processes",
    "sessions",
    "user_passwords",
    "users",
    "webhook_deliveries",
    "webhooks",
]

# Constraint names are deterministic so Alembic revisions can refer to them on both databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def in_dialect(item: object, dialect: str) -> bool:
    """Whether the database of `dialect` holds `item`, an index or constraint of this metadata: one
    made for one database only says so with `ddl_if` (which `metadata.create_all` follows), and
    Alembic's comparison with the other database must not look for it (`migrations/env.py`)."""
    condition = getattr(item, "_ddl_if", None)
    wanted = getattr(condition, "dialect", None)
    return wanted is None or dialect == wanted or (not isinstance(wanted, str) and dialect in wanted)


LOCAL_USER_ID = "local"
GENERATION_KINDS = ("text", "chat", "image", "embedding")
GENERATION_STATUSES = ("pending", "streaming", "complete", "error", "cancelled", "interrupted")
TERMINAL_STATUSES = ("complete", "error", "cancelled", "interrupted")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        # SQLite keeps no zone: store the UTC wall time and re-attach UTC on the way out.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite: for our own records.
JSONValue: Any = JSON().with_variant(JSONB(), "postgresql")
# The same, where Python `None` must be SQL NULL (not JSON `null`), so `IS NULL` finds it.
JSONOrNull: Any = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class _Missing:
    """An absent key, as opposed to a key whose value is JSON null."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class JSONText(TypeDecorator[Any]):
    """Client JSON kept exactly: the text as serialized, key order included, and JSON `null`
    (stored `'null'`) kept apart from an absent key (`MISSING`, stored SQL NULL).

    JSONB cannot do this (it reorders keys, and its drivers read `null` back as SQL NULL), nor can
    SQLite's JSON type (its numeric affinity turns `1.0` into a REAL). UIMessage fields typed
    `unknown` (tool input/output, data, metadata) must load back as the identical JSON.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is MISSING:
            return None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return MISSING if value is None else json.loads(value)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class _Listed(TypeDecorator[str]):
    """`varchar(16)`; on PostgreSQL the domain `domain` over it (DDL, reflection), bound and
    rendered as the `varchar` it is (a DOMAIN has no literal renderer of its own)."""

    impl = String(16)
    cache_ok = True

    def __init__(self, domain: DOMAIN) -> None:
        super().__init__()
        self.domain = domain

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return self.domain if dialect.name == "postgresql" else dialect.type_descriptor(String(16))

    def literal_processor(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(String(16)).literal_processor(dialect)


def _listed(domain: str, constraint: str, values: tuple[str, ...]) -> Any:
    """`varchar(16)`; on PostgreSQL the domain `domain` over it, whose constraint `constraint`
    holds the column to `values` (revision 0037: a domain's CHECK is parsed once per backend, a
    table's at every statement writing the table). On SQLite the table's CHECK does it."""
    array = "'{" + ",".join(values) + "}'::text[]"
    check = f"VALUE::text = ANY ({array})"
    # Made by `_create_domains` (SQLAlchemy's own events for a variant's type run on SQLite too).
    made = DOMAIN(domain, String(16), constraint_name=constraint, check=check, create_type=False)
    _DOMAINS.append(made)
    return _Listed(made)


_DOMAINS: list[DOMAIN] = []
GenerationKind: Any = _listed("generation_kind", "ck_generations_kind", GENERATION_KINDS)
GenerationStatus: Any = _listed("generation_status", "ck_generations_status", GENERATION_STATUSES)
ChatVisibility: Any = _listed("chat_visibility", "ck_chats_visibility", ("private", "link", "public"))
MessageRole: Any = _listed("message_role", "ck_messages_role", ("system", "user", "assistant"))


users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    # The key's public prefix identifies it in lists and logs; only the hash of the secret is kept.
    Column("id", String(40), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(100), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    # After this a request with the key gets 401, as if it were revoked (NULL: never expires).
    Column("expires_at", UTCDateTime),
    # The `provider/model` names the key may call (JSON list); NULL: every model.
    Column("models", JSONOrNull),
)

chats = Table(
    "chats",
    metadata,
    # Chat IDs may come from the client (useChat mints them); they are global, so a stranger's ID
    # is simply not found for another user.
    Column("id", String(200), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(500)),
    Column("visibility", ChatVisibility, nullable=False, default="private"),
    # Messages take their `seq` from here with one atomic UPDATE … RETURNING in the append
    # transaction, so concurrent appends never collide or reorder.
    Column("last_seq", BigInteger, nullable=False, default=0),
    # The generation currently streaming a reply into this chat (for resume), if any.
    Column("active_generation_id", String(40)),
    Column("created_at", UTCDateTime, nullable=False),
    # The list's order (`ix_chats_user_id_updated_at`): set by a turn's start (not by its reply's
    # save, so the one-step finalize's update can be HOT on PostgreSQL: `store/finishes.py`), an
    # append, an edit, a label change.
    Column("updated_at", UTCDateTime, nullable=False),
    # The caller's labels (`genvault.labels`), as on generations; a turn's generation carries
    # the chat's tags (and metadata) so usage by tag covers chats. NULL: none given.
    Column("tags", JSONOrNull),
    Column("metadata", JSONOrNull),
    CheckConstraint(_in("visibility", ("private", "link", "public")), name="visibility").ddl_if(dialect="sqlite"),
    Index(None, "user_id", "updated_at"),
    # PostgreSQL: inserts fill a page to 90 %, the rest is for the turn's HOT update of a row
    # (revision 0031). Alembic compares no table options: `test_migrations` checks it.
    postgresql_with={"fillfactor": 90},
)

messages = Table(
    "messages",
    metadata,
    # A foreign key rather than an AFTER DELETE trigger on `chats`, for the reasons at `fk_parts_message`.
    Column("chat_id", String(200), ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    # Message IDs are unique per chat, not globally: client-sent IDs are never trusted across users.
    Column("id", String(200), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("role", MessageRole, nullable=False),
    Column("metadata", JSONText),
    Column("generation_id", String(40)),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("chat_id", "id"),
    UniqueConstraint("chat_id", "seq"),
    CheckConstraint(_in("role", ("system", "user", "assistant")), name="role").ddl_if(dialect="sqlite"),
    # No index on `user_id`: a chat turn writes two messages, and only erasing or exporting a user
    # looks messages up by user, through their chats (`owned_by`; revision 0032).
)

# One row per UIMessage part. Typed columns are prefixed by the part family; tools use generic
# columns (never a column per tool). CHECK constraints make each part type's required fields
# required in the database too. (A data part's `data` is typed `unknown`: the AI SDK accepts it
# absent, so no CHECK requires it.)
# On PostgreSQL the seven CHECKs below are one, `ck_parts_fields`, calling the function
# `genvault_part_fields_ok` with the same conditions (revision 0030: PostgreSQL re-reads a CHECK's
# expression at every statement that writes the table); of `generations`' three only the cost's
# is a table CHECK (`ck_generations_fields`), the kinds and statuses are the columns' domains, as
# are the chats' visibilities and the messages' roles (revision 0037: `_listed`); the CHECKs of
# those four are SQLite's only. Alembic's comparison does not look at CHECKs.
parts = Table(
    "parts",
    metadata,
    Column("chat_id", String(200), nullable=False),
    Column("message_id", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("type", String(200), nullable=False),
    Column("state", String(32)),  # text/reasoning streaming|done; tool states
    Column("provider_metadata", JSONText),
    Column("text_text", Text),
    Column("reasoning_id", String(200)),
    Column("reasoning_text", Text),
    Column("tool_name", String(200)),
    Column("tool_call_id", String(200)),
    Column("tool_input", JSONText),
    Column("tool_output", JSONText),
    Column("tool_raw_input", JSONText),
    Column("tool_error_text", Text),
    Column("tool_provider_executed", Boolean),
    Column("tool_preliminary", Boolean),
    Column("tool_call_provider_metadata", JSONText),
    Column("tool_title", String(500)),
    Column("source_id", String(500)),
    Column("source_url", Text),
    Column("source_title", Text),
    Column("source_media_type", String(200)),
    Column("source_filename", String(500)),
    Column("file_media_type", String(200)),
    Column("file_filename", String(500)),
    Column("file_url", Text),
    Column("data_id", String(200)),
    Column("data_data", JSONText),
    # Kept only because the client keeps it: a `transient: false` data chunk lands in the part.
    Column("data_transient", Boolean),
    PrimaryKeyConstraint("chat_id", "message_id", "position"),
    # A foreign key rather than an AFTER DELETE trigger on `messages` (which would cost only at a
    # delete): its checks are ~3 % of a chat turn's PostgreSQL CPU and two WAL records, but they
    # are what refuses the parts `upsert_message` writes for a message deleted after it read it
    # (it locks nothing first), and an imported archive's parts without their message.
    ForeignKeyConstraint(
        ["chat_id", "message_id"], ["messages.chat_id", "messages.id"], ondelete="CASCADE", name="fk_parts_message"
    ),
    CheckConstraint("type <> 'text' OR text_text IS NOT NULL", name="text_fields"),
    CheckConstraint("type <> 'reasoning' OR reasoning_text IS NOT NULL", name="reasoning_fields"),
    CheckConstraint(
        "NOT (type LIKE 'tool-%' OR type = 'dynamic-tool') "
        "OR (tool_name IS NOT NULL AND tool_call_id IS NOT NULL AND state IS NOT NULL)",
        name="tool_fields",
    ),
    CheckConstraint(
        "NOT (type LIKE 'tool-%' OR type = 'dynamic-tool') OR state IN "
        "('input-streaming', 'input-available', 'output-available', 'output-error')",
        name="tool_state",
    ),
    CheckConstraint("type <> 'source-url' OR (source_id IS NOT NULL AND source_url IS NOT NULL)", name="source_url"),
    CheckConstraint(
        "type <> 'source-document' OR "
        "(source_id IS NOT NULL AND source_media_type IS NOT NULL AND source_title IS NOT NULL)",
        name="source_document",
    ),
    CheckConstraint("type <> 'file' OR (file_media_type IS NOT NULL AND file_url IS NOT NULL)", name="file_fields"),
    # A prefix search's own rows (`search.service._pg_matched`): the text parts only, the ones a
    # search can match; a chat turn's other parts (a reply's `step-start`, tool calls, reasoning)
    # take no entry. Erasing and exporting a user reach parts through their chats (`owned_by`;
    # revision 0032).
    Index(None, "user_id", postgresql_where=text("type = 'text'"), sqlite_where=text("type = 'text'")),
)

generations = Table(
    "generations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", GenerationKind, nullable=False),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # A chat's generations hold its content (request messages, reply), so they go with the chat.
    Column("chat_id", String(200), ForeignKey("chats.id", ondelete="CASCADE")),
    Column("message_id", String(200)),  # the assistant message this generation writes
    Column("status", GenerationStatus, nullable=False),
    Column("model", String(200), nullable=False),  # provider/model as asked for
    Column("provider", String(64), nullable=False),
    # The prompt or messages and every parameter that changes the output.
    Column("request", JSONValue, nullable=False),
    Column("result_text", Text),
    # Chat generations: the assistant UIMessage as assembled so far (checkpoints) or final.
    Column("result_message", JSONValue),
    Column("error", Text),
    Column("finish_reason", String(32)),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cached_input_tokens", Integer),
    Column("cache_write_tokens", Integer),
    Column("reasoning_tokens", Integer),
    Column("total_tokens", Integer),
    # True when the usage is genvault's estimate (a reply cut short before the provider sent its
    # counts: `genvault.estimate`); NULL or false: the provider's own numbers.
    Column("usage_estimated", Boolean),
    # NULL means unknown (no price known for the model), never "free".
    Column("cost_nano_usd", BigInteger),
    Column("unit_prices", JSONValue),  # USD per million tokens actually applied, as strings
    Column("price_source", String(100)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("first_token_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("checkpoint_at", UTCDateTime),
    # The process running the generation (a `processes` row, whose heartbeat says it is alive).
    # `lease_expires_at` is set when the run starts and not renewed: it only decides for an owner
    # without a `processes` row (records from before heartbeats, or restored from a backup).
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UTCDateTime),
    Column("idempotency_key", String(200)),
    Column("cache_key", String(100)),
    Column("cached_from", String(40), ForeignKey("generations.id", ondelete="SET NULL")),
    # A cache hit (or a joined identical request) costs 0; this is what the original cost, so
    # usage reports can show what the cache saved. NULL on records that called the provider.
    Column("saved_nano_usd", BigInteger),
    # The API key the request came with (NULL: the library, the CLI, or another auth mode), so
    # usage can be reported per key. No foreign key: a record outlives a revoked key's row.
    Column("api_key_id", String(40)),
    # What admission reserves against the limits (`genvault.limits`): amount, day, month,
    # subjects and their caps. The insert's trigger takes it from `limit_usage` or fails, and the
    # update that ends the record (finalize, a cancel from elsewhere, the sweeper) settles
    # exactly that (revision 0015). NULL when no spend or concurrency limit applied.
    Column("reservation", JSONOrNull),
    # The caller's labels (`genvault.labels`): a JSON array of short strings and a small JSON
    # object, set at creation and changed by PATCH. NULL: none given.
    Column("tags", JSONOrNull),
    Column("metadata", JSONOrNull),
    CheckConstraint(_in("kind", GENERATION_KINDS), name="kind").ddl_if(dialect="sqlite"),
    CheckConstraint(_in("status", GENERATION_STATUSES), name="status").ddl_if(dialect="sqlite"),
    CheckConstraint("cost_nano_usd IS NULL OR cost_nano_usd >= 0", name="cost_not_negative"),
    # A retried request with the same key returns the same record. On PostgreSQL a partial unique
    # index over the rows that have a key: most rows have none, and a table constraint took an
    # entry for each of them and for each new version of it (the finalize's is never HOT), two a
    # chat turn (revision 0032). SQLite keeps the table's UNIQUE constraint: it cannot drop one
    # without rebuilding the table, and its finalize leaves the entry alone (SQLite rewrites only
    # the indexes of the columns an UPDATE sets). Both refuse the same rows (NULLs are distinct).
    # Two names: Alembic's comparison pairs a constraint and an index of one name.
    UniqueConstraint("user_id", "idempotency_key").ddl_if(dialect="sqlite"),
    Index(
        "uq_generations_idempotency_key",
        "user_id",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ).ddl_if(dialect="postgresql"),
    Index(None, "user_id", "created_at"),
    Index(None, "model", "created_at"),
    # The sweeper's (and its kin's: `store.generations.ACTIVE_ROWS`): the records still running,
    # which have no `finished_at` (every change that ends a record sets it). Keyed and filtered by
    # columns the move to `streaming` does not change, so on PostgreSQL that update can be HOT (no
    # index entry); an index on the status took an entry for each of a turn's row versions (0029).
    Index(
        "ix_generations_active",
        "created_at",
        postgresql_where=text("finished_at IS NULL"),
        sqlite_where=text("finished_at IS NULL"),
    ),
    Index(None, "chat_id", "created_at"),
    # No index on `cache_key`: nothing looks a generation up by it (the dedup cache keeps its own
    # table, `cache_entries`), and an index would take an entry for every version of every row
    # (revision 0027 dropped it).
)

# One row per reference to a stored file: an upload in a chat message, an image a generation made.
# The bytes live in the blob store under their sha256, so rows may share one object; an object is
# deleted only when no row names its sha256 any more. Rows carry `user_id` like every user-data
# table, so exporting or erasing a user reaches their files.
blobs = Table(
    "blobs",
    metadata,
    Column("id", String(40), primary_key=True),  # file_<ulid>: the permanent URL is /files/{id}
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("sha256", String(64), nullable=False, index=True),  # hex; the object's key in the store
    Column("media_type", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("filename", String(500)),
    # What produced or carries the file. No foreign keys: a file outlives nothing it is linked to
    # by accident, and erasing a chat erases its files explicitly (blobs first, then objects).
    Column("generation_id", String(40), index=True),
    Column("chat_id", String(200)),
    Column("message_id", String(200)),
    Column("part_position", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "user_id", "created_at"),
)

# Limits set by an admin (`genvault.limits`): on one user (`user:<id>`), one API key
# (`key:<id>`), or `default`, which applies to every user, field by field, where the user has no
# value of their own. NULL: no limit of that kind. Money in nano-USD; `concurrent` counts
# generations running at once.
limits = Table(
    "limits",
    metadata,
    Column("subject", String(80), primary_key=True),
    # The user the subject is or belongs to (a key's owner); NULL for `default`.
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE")),
    Column("daily_nano_usd", BigInteger),
    Column("monthly_nano_usd", BigInteger),
    Column("total_nano_usd", BigInteger),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("concurrent", Integer),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "user_id"),
)

# The ledger budgets are checked against, one row per limited subject: what was spent plus what
# running generations hold reserved, in the current UTC day and month and in total, and how many
# run. Kept by triggers on `generations` (revision 0015): the insert of a pending record with a
# `reservation` takes it with a conditional upsert (it changes the row only if every limit still
# holds, so concurrent requests cannot overshoot; else the insert fails with `LIMIT_REFUSED`),
# and the update that ends the record replaces it with the true cost. A new day or month starts
# at zero when the first request of it arrives.
LIMIT_REFUSED = "genvault: limit reached"  # the reserve trigger's error message

limit_usage = Table(
    "limit_usage",
    metadata,
    Column("subject", String(80), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("day", String(10), nullable=False),  # YYYY-MM-DD (UTC)
    Column("day_nano_usd", BigInteger, nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM (UTC)
    Column("month_nano_usd", BigInteger, nullable=False),
    Column("total_nano_usd", BigInteger, nullable=False),
    Column("running", Integer, nullable=False),
    Column("reserved_nano_usd", BigInteger, nullable=False),  # part of the sums above, still held
    Index(None, "user_id"),
)

# Who erased or expired what, and how much: kept after the data is gone, as the proof that it is.
# No personal content (no titles, prompts or names), only counts and who. No foreign keys: an
# event must outlive the users it is about. And no erased user's id: an event names its subject
# by pseudonym, "sha256:" + hex sha256 of a fixed prefix and the id (`store.audit.user_hash`), so
# an operator given an id can show that a request about it was carried out without the log
# keeping the id. A pseudonym, not anonymity: a guessed id can be hashed and looked up.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    # A living actor's id (an admin erasing someone). Both actor columns NULL: the operator, from
    # the command line or the server itself.
    Column("actor_user_id", String(64)),
    # An erased actor's pseudonym instead of their id: set at once when a user erases themself
    # (then it equals `subject_user_hash`), and on earlier events when an admin is erased later.
    Column("actor_user_hash", String(71)),
    Column("action", String(32), nullable=False),
    Column("subject_user_hash", String(71)),  # NULL for retention runs: about age, not a person
    Column("counts", JSONValue, nullable=False),  # {"chats": 3, "messages": 12, ...}
    Index(None, "subject_user_hash", "at"),
)

# The SQL dedup cache (the embedded default; Redis replaces it when `redis_url` is set). A row
# maps a request's cache key to the `complete` generation that answered it, until `expires_at`.
# Erasing a generation drops its rows (CASCADE), so a cache never outlives the data it points to.
cache_entries = Table(
    "cache_entries",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("generation_id", String(40), ForeignKey("generations.id", ondelete="CASCADE"), nullable=False),
    # The generation's user (an entry is written by its generation's finalize). No index on it:
    # every completed turn writes an entry, and a user's entries are found through their
    # generations (`owned_by`; revision 0032).
    Column("user_id", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "expires_at"),  # the purge of expired entries, once a minute
    Index(None, "generation_id"),  # the CASCADE from a deleted generation, and a user's entries
)

# One row per running server (or library) process: its heartbeat. A process renews `expires_at`
# every few seconds; another process's sweeper declares it dead (`dead_at`) once that passes, and
# only then marks its active generations `interrupted`. A process that finds its own row declared
# dead stops its runs. Runtime state, not data: backups, archives and counts leave it out
# (`info["runtime"]`).
processes = Table(
    "processes",
    metadata,
    Column("id", String(100), primary_key=True),  # host:pid:nonce, the generations' lease_owner
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("dead_at", UTCDateTime),
    Index(None, "expires_at"),
    info={"runtime": True},
)

# A user's thumbs up (+1) or down (-1) on one of their generations or on an assistant message of
# one of their chats, with an optional comment (`genvault.feedback`). One row per (user, target):
# a second rating replaces the first. A target is either a generation or a message, never both
# (CHECK), so the two unique constraints never meet (NULLs are distinct in both databases). The
# foreign keys drop a rating with its target (a deleted chat or message, a retention run).
feedback = Table(
    "feedback",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("generation_id", String(40), ForeignKey("generations.id", ondelete="CASCADE")),
    Column("chat_id", String(200)),
    Column("message_id", String(200)),
    Column("rating", Integer, nullable=False),
    Column("comment", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    ForeignKeyConstraint(
        ["chat_id", "message_id"], ["messages.chat_id", "messages.id"], ondelete="CASCADE", name="fk_feedback_message"
    ),
    CheckConstraint("rating IN (-1, 1)", name="rating"),
    CheckConstraint(
        "(generation_id IS NOT NULL AND chat_id IS NULL AND message_id IS NULL)"
        " OR (generation_id IS NULL AND chat_id IS NOT NULL AND message_id IS NOT NULL)",
        name="one_target",
    ),
    UniqueConstraint("user_id", "generation_id"),
    UniqueConstraint("user_id", "chat_id", "message_id"),
    Index(None, "generation_id"),
    Index(None, "chat_id", "message_id"),
)

# Webhook subscriptions (`genvault.webhooks`), set by an admin. `events` is the subscribed event
# names between commas (",generation.completed,chat.deleted,"), so the outbox insert finds the
# subscribers with one LIKE on either database. The secret signs every delivery, so it is kept
# as given (a hash could not sign). Configuration, not anyone's data: archives leave it out.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("events", String(1000), nullable=False),
    Column("secret", String(200), nullable=False),
    Column("description", String(500)),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    info={"runtime": True},
)

# The outbox: one row per (event, subscribed webhook), inserted in the transaction of the event
# itself (a finalize, a sweep, a chat deletion, an erasure), so an event is committed with its
# deliveries or not at all, and a process that dies leaves them here for the next one. A worker
# claims due rows with a lease (`lease_owner`, `lease_expires_at`); a row whose lease expired is
# claimable again (at-least-once). `id` orders the events: a row waits while an earlier row of the
# same webhook and `ordering_key` (a generation's chat, else the generation) is still pending.
# `log` keeps the last attempts ({at, status_code, error}). `user_id`: whose record the event is
# about (erasure removes their rows; NULL for user.erased itself).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("webhook_id", String(40), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("event", String(40), nullable=False),
    Column("ordering_key", String(200), nullable=False),
    Column("user_id", String(64)),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("log", JSONValue),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    CheckConstraint(_in("status", ("pending", "delivered", "dead")), name="status"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "webhook_id", "ordering_key", "id"),
    Index(None, "user_id"),
    info={"runtime": True},
)


# Browser sign-in sessions (the pages under `api_key` auth). The cookie carries the session id and
# a random token; only the token's hash is kept, so a copy of the table signs nobody in. A session
# made with an API key ends when the key is revoked or expires (`key_id`); `revoked_at` is set on
# sign-out and key revocation; erasing the user deletes the rows (they carry `user_id`). Runtime
# state, not data: backups and archives leave it out.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("key_id", String(40), ForeignKey("api_keys.id", ondelete="CASCADE"), index=True),
    Column("token_hash", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    info={"runtime": True},
)


# Optional page passwords (`genvault users password`): an argon2id hash (argon2-cffi's encoded
# form, which carries its parameters) per user. A table of its own, so a user's archive (which
# leaves credentials out, as it does API keys) can skip it; erasure deletes it with the user.
user_passwords = Table(
    "user_passwords",
    metadata,
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


# Tables whose `user_id` has no index over every row, and the column and parent table a user's
# rows are found through: every row is written by its parent's owner (a message or part by its
# chat's, whose ownership the write checks; a cache entry by its generation's finalize), so the
# parent's `user_id` finds the same rows. A chat turn writes these rows, and an index by user took
# an entry for each, for what only erasing and exporting a user look up (revision 0032).
_OWNED_THROUGH: dict[str, tuple[str, Table]] = {
    "messages": ("chat_id", chats),
    "parts": ("chat_id", chats),
    "cache_entries": ("generation_id", generations),
}


def owned_by(table: Table, user_id: str) -> ColumnElement[bool]:
    """The condition on `table`'s rows that are the user's, for statements that read or delete a
    user's rows table by table (erasure, a personal archive), each through an index."""
    if table is users:
        return table.c.id == user_id
    through = _OWNED_THROUGH.get(table.name)
    if through is None:
        return table.c.user_id == user_id
    column, parent = through
    return table.c[column].in_(select(parent.c.id).where(parent.c.user_id == user_id))


def data_tables() -> list[Table]:
    """The tables that hold data (what backups, archives and counts cover), parents first."""
    return [t for t in metadata.sorted_tables if not t.info.get("runtime")]


@event.listens_for(metadata, "before_create")
def _create_domains(target: MetaData, connection: Any, **kw: Any) -> None:
    """`metadata.create_all` on PostgreSQL: the columns' domains (`_listed`) first, unless there."""
    if connection.dialect.name != "postgresql":
        return
    for domain in _DOMAINS:
        if not connection.dialect.has_type(connection, domain.name):
            domain.create(connection, checkfirst=False)


@event.listens_for(metadata, "after_drop")
def _drop_domains(target: MetaData, connection: Any, **kw: Any) -> None:
    """`metadata.drop_all` on PostgreSQL: the columns' domains after the tables."""
    if connection.dialect.name == "postgresql":
        for domain in _DOMAINS:
            domain.drop(connection, checkfirst=True)
