"""The search box's language, parsed into terms, and the terms as each database's query.

    migration "foreign key" deploy*  -draft

Words (all must occur), "phrases" in double quotes (the words next to each other), a prefix
(`migra*`: any word starting with it) and `-exclude` (a word or phrase that must not occur). At
least one term must be wanted. Nothing the user types reaches the database as syntax: each term
is quoted here (an FTS5 string) or passed as a bound parameter (PostgreSQL), so a malformed query
is an `InvalidRequest` that says what is wrong, never a database error.

Words are split as both indexes split them (letters and digits; `_`, `-`, `.` and the rest are
separators), so `foo_bar` is the phrase "foo bar" on both databases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from genvault.errors import InvalidRequest

__all__ = [
    "MAX_QUERY_LENGTH",
    "MAX_TERMS",
    "Term",
    "TextQuery",
    "count_words",
    "find_word",
    "parse_query",
    "word_patterns",
    "words_of",
]

MAX_QUERY_LENGTH = 500
MAX_TERMS = 16
# A prefix shorter than this would match most of the vocabulary: slow, and never what is meant.
MIN_PREFIX = 2

_WORD = re.compile(r"[^\W_]+")
_WORD_CHAR = re.compile(r"[^\W_]")


def words_of(text: str) -> list[str]:
    """The words of `text` as the indexes see them (lowercase runs of letters and digits)."""
    return [w.lower() for w in _WORD.findall(text)]


@lru_cache(maxsize=256)
def word_patterns(whole: frozenset[str], prefixes: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """Patterns that find, in lowercased text, each of the whole words `whole` and the words
    starting with each of `prefixes`, one pattern a term; `find_word`/`count_words` keep the hits
    that start a word. Each pattern begins with its literal text, so `re` skips to candidates by
    substring search instead of testing every word in Python (the ranking runs per matched row;
    a snippet may read a long output)."""
    out = [re.compile(re.escape(w) + r"(?![^\W_])") for w in sorted(whole)]
    out += [re.compile(re.escape(p) + r"[^\W_]*") for p in prefixes]
    return tuple(out)


def _starts_word(text: str, at: int) -> bool:
    return at == 0 or _WORD_CHAR.match(text, at - 1) is None


def count_words(pattern: re.Pattern[str], lowered: str) -> int:
    """How many of `pattern`'s hits in `lowered` start a word."""
    return sum(1 for m in pattern.finditer(lowered) if _starts_word(lowered, m.start()))


def find_word(patterns: tuple[re.Pattern[str], ...], lowered: str) -> re.Match[str] | None:
    """The first hit of any of `patterns` in `lowered` that starts a word (the whole word)."""
    best: re.Match[str] | None = None
    for pattern in patterns:
        for m in pattern.finditer(lowered, 0, best.start() if best else len(lowered)):
            if _starts_word(lowered, m.start()):
                best = m
                break
    return best


@dataclass(frozen=True, slots=True)
class Term:
    kind: Literal["word", "phrase", "prefix"]
    text: str  # as typed (without quotes, `*` or `-`)
    negated: bool = False

    @property
    def words(self) -> list[str]:
        return words_of(self.text)

    def fts5(self) -> str:
        """This term as an FTS5 string (double quotes doubled inside: no FTS5 syntax survives)."""
        quoted = '"' + " ".join(self.words).replace('"', '""') + '"'
        return quoted + " *" if self.kind == "prefix" else quoted


@dataclass(frozen=True, slots=True)
class TextQuery:
    text: str
    terms: tuple[Term, ...]

    @property
    def wanted(self) -> list[Term]:
        return [t for t in self.terms if not t.negated]

    @property
    def excluded(self) -> list[Term]:
        return [t for t in self.terms if t.negated]

    def fts5(self, *, columns: str) -> str:
        """An FTS5 MATCH expression over `columns` (`body` or `{prompt output}`)."""
        expr = " ".join(t.fts5() for t in self.wanted)
        for term in self.excluded:
            expr += " NOT " + term.fts5()
        return f"{columns} : ({expr})"

    def highlight_words(self) -> tuple[frozenset[str], tuple[str, ...]]:
        """(whole words, prefixes) to mark in a snippet: the wanted terms' words."""
        whole = frozenset(w for t in self.wanted if t.kind != "prefix" for w in t.words)
        prefixes = tuple(t.words[0] for t in self.wanted if t.kind == "prefix")
        return whole, prefixes


def parse_query(text: str) -> TextQuery:
    """Parse what the user typed; `InvalidRequest` with the reason when it is not a query."""
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidRequest(f"the search query is longer than {MAX_QUERY_LENGTH} characters")
    if "\x00" in text:
        raise InvalidRequest("the search query contains a NUL character")
    terms: list[Term] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-"
        if negated:
            i += 1
            if i == n or text[i].isspace():
                raise InvalidRequest("a '-' must be followed by the word or \"phrase\" to leave out, as in -draft")
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise InvalidRequest('the search query has an unclosed quote: close the "phrase"')
            inner = text[i + 1 : end]
            i = end + 1
            if i < n and text[i] == "*":
                raise InvalidRequest('a prefix search is a single word followed by *, as in migra*, not a "phrase"*')
            if not words_of(inner):
                raise InvalidRequest(f'the phrase "{inner}" has no letters or digits to search for')
            terms.append(Term("phrase", inner, negated))
            continue
        end = i
        while end < n and not text[end].isspace() and text[end] != '"':
            end += 1
        raw = text[i:end]
        i = end
        star = raw.find("*")
        if star >= 0:
            stem = raw[:star]
            if star != len(raw) - 1 or not stem:
                raise InvalidRequest(f"{raw!r}: '*' goes at the end of a word, as in migra*")
            if not _WORD.fullmatch(stem):
                raise InvalidRequest(f"{raw!r}: a prefix must be letters and digits only, as in migra*")
            if len(stem) < MIN_PREFIX:
                raise InvalidRequest(f"{raw!r}: a prefix needs at least {MIN_PREFIX} letters or digits")
            terms.append(Term("prefix", stem, negated))
            continue
        if not words_of(raw):
            raise InvalidRequest(f"{raw!r} has no letters or digits to search for")
        terms.append(Term("word", raw, negated))
    if not terms:
        raise InvalidRequest("the search query is empty: type a word to find")
    if len(terms) > MAX_TERMS:
        raise InvalidRequest(f"the search query has {len(terms)} terms; at most {MAX_TERMS}")
    if all(t.negated for t in terms):
        raise InvalidRequest("the search query only leaves words out: add a word to find")
    return TextQuery(text, tuple(terms))
