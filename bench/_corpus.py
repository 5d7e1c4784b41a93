"""A reproducible corpus for the search benchmark: chats, messages and generations whose text
reads like conversation with a Zipf-like vocabulary, code-like tokens and numbers.

Everything comes from one `random.Random(seed)`: the same seed gives the same rows, on every
database, in the same order. Rows come in batches, so a million messages never sit in memory.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

# The head of the vocabulary: ordinary English, most frequent first (a Zipf curve's top ranks).
_COMMON = [
    "the",
    "to",
    "and",
    "of",
    "a",
    "in",
    "is",
    "it",
    "you",
    "that",
    "for",
    "this",
    "on",
    "with",
    "be",
    "not",
    "are",
    "can",
    "as",
    "have",
    "but",
    "or",
    "if",
    "at",
    "your",
    "from",
    "we",
    "so",
    "an",
    "will",
    "what",
    "do",
    "was",
    "by",
    "there",
    "all",
    "one",
    "they",
    "should",
    "use",
    "my",
    "would",
    "need",
    "about",
    "how",
    "when",
    "which",
    "more",
    "like",
    "also",
    "then",
    "just",
    "data",
    "table",
    "query",
    "error",
    "file",
    "function",
    "user",
    "model",
    "server",
    "test",
    "code",
    "value",
    "time",
    "first",
    "new",
    "other",
    "make",
    "work",
    "change",
    "because",
    "run",
    "type",
    "list",
    "add",
    "name",
    "version",
    "some",
    "only",
    "here",
    "see",
    "get",
    "into",
    "any",
    "them",
    "update",
    "database",
    "want",
    "set",
    "each",
    "field",
    "after",
    "instead",
    "way",
    "their",
    "index",
    "first",
    "where",
    "could",
    "than",
    "check",
    "call",
    "using",
    "line",
    "return",
    "problem",
    "fix",
    "does",
    "migration",
    "request",
    "response",
    "still",
    "key",
    "example",
    "output",
    "input",
    "default",
    "string",
    "number",
]
_DOMAIN = [
    "schema",
    "column",
    "postgres",
    "sqlite",
    "config",
    "deploy",
    "release",
    "cache",
    "token",
    "stream",
    "message",
    "chat",
    "invoice",
    "customer",
    "payment",
    "order",
    "account",
    "report",
    "build",
    "docker",
    "container",
    "network",
    "timeout",
    "retry",
    "queue",
    "worker",
    "thread",
    "process",
    "memory",
    "latency",
    "backup",
    "restore",
    "import",
    "export",
    "search",
    "ranking",
    "snippet",
    "cursor",
    "page",
    "filter",
    "owner",
    "admin",
    "session",
    "login",
    "password",
    "email",
    "upload",
    "image",
    "prompt",
]
_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "te",
    "ven",
    "dor",
    "sil",
    "pra",
    "gun",
    "tor",
    "mel",
    "nis",
    "bra",
    "qui",
    "zen",
    "fal",
    "cor",
    "dre",
    "lun",
    "sa",
    "po",
    "ri",
    "na",
    "ge",
    "tha",
    "vor",
    "kel",
    "mun",
    "dis",
    "pel",
    "tro",
    "fan",
    "ber",
    "los",
    "wi",
    "cha",
    "ple",
    "mon",
    "tur",
    "gra",
    "lix",
    "sen",
    "dov",
    "arn",
    "ost",
    "ir",
    "ul",
    "em",
    "an",
    "ov",
    "ex",
]
_MIGRA = ["migrate", "migrations", "migrating", "migrated", "migrator"]
MODELS = ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "anthropic/claude-haiku-4"]


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words = list(dict.fromkeys(_COMMON + _DOMAIN))
    seen = set(words)
    while len(words) < size:
        w = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 4))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    # Words starting "migra" at a spread of ranks, so `migra*` is a realistic prefix.
    for rank, w in zip((2500, 5000, 9000, 15000, 25000), _MIGRA, strict=True):
        words.insert(min(rank, len(words)), w)
    return words


@dataclass
class Corpus:
    seed: int = 20
    users: int = 1000
    chats: int = 50_000
    messages: int = 1_000_000
    generations: int = 200_000
    vocabulary: int = 50_000
    rng: random.Random = field(init=False)
    words: list[str] = field(init=False)
    _cum: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.words = _vocabulary(self.rng, self.vocabulary)
        # Zipf-Mandelbrot weights: rank r has weight 1 / (r + 2.7)^1.07.
        self._cum = list(accumulate(1 / (r + 2.7) ** 1.07 for r in range(len(self.words))))
        self.start = datetime(2025, 1, 1, tzinfo=UTC)

    # What the benchmark searches for: two common content words, a rare word, a prefix.
    @property
    def common_pair(self) -> tuple[str, str]:
        return ("table", "error")

    @property
    def rare_word(self) -> str:
        return self.words[len(self.words) * 3 // 5]

    def user_id(self, i: int) -> str:
        return f"user_{i:05d}"

    def _token(self) -> str:
        roll = self.rng.random()
        if roll < 0.03:
            return str(self.rng.choice((self.rng.randint(0, 99), self.rng.randint(100, 99999), 4711)))
        if roll < 0.05:
            a, b = self.rng.choices(self.words, cum_weights=self._cum, k=2)
            return self.rng.choice(
                (f"{a}_{b}", f"{a}{b.capitalize()}()", f"{a}.py", f"{a}/{b}.ts", f"{self.rng.getrandbits(32):08x}")
            )
        return self.rng.choices(self.words, cum_weights=self._cum, k=1)[0]

    def text(self, low: int, high: int) -> str:
        n = self.rng.randint(low, high)
        out: list[str] = []
        sentence = 0
        for _ in range(n):
            token = self._token()
            out.append(token.capitalize() if sentence == 0 and token.isalpha() else token)
            sentence += 1
            if sentence > 6 and self.rng.random() < 0.15:
                out[-1] += self.rng.choice((".", ".", "?", "!", ":"))
                sentence = 0
        return " ".join(out) + "."

    def batches(self, size: int = 20_000) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
        """Batches of rows: {"users", "chats", "messages", "parts", "generations"} as tuples of
        the columns in `COLUMNS`; timestamps as aware datetimes, JSON as text."""
        yield {"users": [(self.user_id(i), f"User {i}", False, self.start) for i in range(self.users)]}
        per_chat = self.messages // self.chats
        chat_gens = int(self.generations * 0.35)
        other_gens = self.generations - chat_gens
        batch: dict[str, list[tuple[Any, ...]]] = {k: [] for k in ("chats", "messages", "parts", "generations")}
        written = 0
        gen_no = 0
        for c in range(self.chats):
            user = self.user_id(self.rng.randrange(self.users))
            chat_id = f"chat_{c:06d}"
            count = per_chat if c < self.chats - 1 else self.messages - written
            at = self.start + timedelta(seconds=self.rng.randrange(60 * 60 * 24 * 600))
            title = self.text(2, 6).rstrip(".") if self.rng.random() < 0.9 else None
            batch["chats"].append((chat_id, user, title, "private", count, at, at + timedelta(minutes=count)))
            for seq in range(1, count + 1):
                role = "user" if seq % 2 else "assistant"
                message_id = f"m{seq}"
                generation_id = None
                created = at + timedelta(minutes=seq)
                body = self.text(4, 40) if role == "user" else self.text(15, 90)
                if role == "assistant" and gen_no < chat_gens and self.rng.random() < 0.5:
                    generation_id = f"gen_{gen_no:07d}"
                    gen_no += 1
                    request = json.dumps({"messages_before": seq - 1, "params": {}})
                    batch["generations"].append(
                        (
                            generation_id,
                            "chat",
                            user,
                            chat_id,
                            message_id,
                            "complete",
                            self.rng.choice(MODELS),
                            "openai",
                            request,
                            body,
                            created,
                        )
                    )
                batch["messages"].append((chat_id, message_id, seq, user, role, generation_id, created))
                batch["parts"].append((chat_id, message_id, 0, user, "text", "done", body))
            written += count
            if len(batch["messages"]) >= size:
                yield batch
                batch = {k: [] for k in batch}
        for g in range(other_gens):
            user = self.user_id(self.rng.randrange(self.users))
            created = self.start + timedelta(seconds=self.rng.randrange(60 * 60 * 24 * 600))
            kind = "image" if self.rng.random() < 0.1 else "text"
            prompt = self.text(5, 30)
            result = None if kind == "image" else self.text(20, 120)
            status = "error" if self.rng.random() < 0.03 else "complete"
            request = json.dumps({"prompt": prompt, "params": {}})
            batch["generations"].append(
                (
                    f"gen_t{g:07d}",
                    kind,
                    user,
                    None,
                    None,
                    status,
                    self.rng.choice(MODELS),
                    "openai",
                    request,
                    result,
                    created,
                )
            )
            if len(batch["generations"]) >= size:
                yield batch
                batch = {k: [] for k in batch}
        if any(batch.values()):
            yield batch


COLUMNS = {
    "users": ("id", "name", "is_admin", "created_at"),
    "chats": ("id", "user_id", "title", "visibility", "last_seq", "created_at", "updated_at"),
    "messages": ("chat_id", "id", "seq", "user_id", "role", "generation_id", "created_at"),
    "parts": ("chat_id", "message_id", "position", "user_id", "type", "state", "text_text"),
    "generations": (
        "id",
        "kind",
        "user_id",
        "chat_id",
        "message_id",
        "status",
        "model",
        "provider",
        "request",
        "result_text",
        "created_at",
    ),
}
