"""Catalog attributes for replayed logs: a MovieTweetings ``movies.dat`` as each movie's category.

``livereco eval`` and ``livereco replay`` read the ratings log; when a ``movies.*`` file sits beside
it (``movie_id::title (year)::genre|genre``), each rating of a known movie gets
its genres as the event's ``context.category``, as a shop would send its
catalog category with each event. An event carries one category, so a movie
with several genres needs a rule (:data:`GENRE_RULES`):

* ``first``: its first genre as listed (24 categories on MovieTweetings 100k);
* ``rarest``: its least common genre in the catalog (the most specific: a
  "Drama|Horror" movie is a horror movie; 25 categories);
* ``combined``: the whole genre list as one category ("Drama|Horror"; 1,467);
* ``none``: no categories (the ratings alone, as before this module).

Which rule serves the affinity candidates best was measured (README, Quality →
MovieTweetings); ``first`` is the default. A movie without genres, or not in
the file, gets no category. A line that is not ``id::title::genres`` (or not
UTF-8, or whose category could not be an event's) is reported with its file
and line number and skipped: its movie's ratings still count, without a
category.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> movies = Path(tempfile.mkdtemp()) / "movies.dat"
>>> _ = movies.write_bytes(b"0001::Noir (1950)::Drama|Film-Noir\\r\\n0002::Laugh (1990)::Comedy|Drama\\r\\n"
...                        b"0003::Untitled (2013)::\\r\\nnot a movie line\\n")
>>> catalog = read_movie_genres(movies)
>>> catalog.genres
{'0001': ('Drama', 'Film-Noir'), '0002': ('Comedy', 'Drama'), '0003': ()}
>>> catalog.rejected == [f"{movies}:4: expected movie_id::title::genre|genre, got 1 field"]
True
>>> [catalog.categories(rule).get("0001") for rule in ("first", "rarest", "combined", "none")]
['Drama', 'Film-Noir', 'Drama|Film-Noir', None]
>>> "0003" in catalog.categories("first")            # no genres: no category
False
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from online.contract import DEFAULT_LIMITS

__all__ = ["GENRE_RULES", "MovieCatalog", "attach_category", "read_movie_genres"]

GENRE_RULES = ("first", "rarest", "combined", "none")
"""How a movie's genres become its one category (see the module docstring)."""

_SEPARATOR = "::"


@dataclass
class MovieCatalog:
    """Each movie's genres (in file order), and the lines that could not be read (``file:line: reason``)."""

    path: Path
    genres: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)

    def categories(self, rule: str) -> dict[str, str]:
        """``movie_id -> category`` under ``rule`` (:data:`GENRE_RULES`); movies without genres are left out."""
        if rule not in GENRE_RULES:
            raise ValueError(f"genre rule {rule!r}: expected one of {', '.join(GENRE_RULES)}")
        if rule == "none":
            return {}
        if rule == "first":
            return {movie: genres[0] for movie, genres in self.genres.items() if genres}
        if rule == "combined":
            return {movie: "|".join(genres) for movie, genres in self.genres.items() if genres}
        counts = Counter(genre for genres in self.genres.values() for genre in genres)
        # The least common genre; among equally common ones, the first listed (min keeps the first).
        return {movie: min(genres, key=counts.__getitem__) for movie, genres in self.genres.items() if genres}


def attach_category(raw: dict[str, Any], categories: Mapping[str, str]) -> None:
    """Give a raw event (a log line's dict, not yet validated) its item's category, unless it names one.

    >>> raw = {"item_id": 1, "context": {"device": "tv"}}
    >>> attach_category(raw, {"1": "Drama"}); raw["context"]
    {'device': 'tv', 'category': 'Drama'}
    >>> own = {"item_id": "1", "context": {"category": "Noir"}}
    >>> attach_category(own, {"1": "Drama"}); own["context"]
    {'category': 'Noir'}
    """
    category = categories.get(str(raw.get("item_id")))
    if category is None:
        return
    context = raw.get("context")
    if context is None:
        raw["context"] = {"category": category}
    elif isinstance(context, dict) and "category" not in context:
        raw["context"] = {**context, "category": category}


def read_movie_genres(path: str | Path) -> MovieCatalog:
    """The genres of every movie in ``path`` (``movie_id::title::genre|genre``, CRLF or LF lines)."""
    path = Path(path)
    catalog = MovieCatalog(path)
    limit = DEFAULT_LIMITS.max_context_value_length
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                catalog.rejected.append(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            if not line.strip():
                continue
            parts = line.split(_SEPARATOR)
            if len(parts) < 3:  # a title may hold "::"; the id is first and the genres last
                count = f"{len(parts)} field" + ("" if len(parts) == 1 else "s")
                catalog.rejected.append(f"{where}: expected movie_id::title::genre|genre, got {count}")
                continue
            movie, genres = parts[0].strip(), tuple(g.strip() for g in parts[-1].split("|") if g.strip())
            if not movie:
                catalog.rejected.append(f"{where}: the movie id is empty")
                continue
            bad = next((g for g in genres if not g.isprintable()), None)
            if bad is not None or len("|".join(genres)) > limit:
                reason = "contains control characters" if bad is not None else f"are longer than {limit} characters"
                catalog.rejected.append(f"{where}: the genres of movie {movie!r} {reason}")
                continue
            if movie in catalog.genres:
                catalog.rejected.append(f"{where}: movie {movie!r} is listed again (its first line is kept)")
                continue
            catalog.genres[movie] = genres
    return catalog
