"""The final list: blended candidates → filters and refill → rules → diversity → the first ``n``.

:func:`assemble` is the layers of DESIGN.md "Serving one list" after the
blend, as one pure function the server calls per request (and the flow's
ranker stage may call to score what is served). Its input is the blended
list as :func:`online.blend.blend` returns it, ranked deeper than ``n`` (the
server asks the blend for every candidate), the trending lists to refill
from, the request's :class:`~online.catalog.filters.Filters`, the
:class:`~online.catalog.rules.Rules` in force and the
:class:`~online.catalog.snapshot.CatalogSnapshot`. Each item comes back with
its source: the blend's (``personal``, ``trending``, ``affinity``,
``explore``), ``trending`` for refill, ``pinned`` and ``promotion`` for what
rules placed. The order of the rules is in :mod:`online.catalog.rules`.

Examples
--------
>>> from online.catalog.item import parse_item
>>> from online.catalog.rules import parse_rules
>>> from online.catalog.snapshot import CatalogSnapshot
>>> snapshot = CatalogSnapshot()
>>> for item, category in (("t1", "fitness/treadmills"), ("t2", "fitness/treadmills"), ("t3", "fitness/treadmills"),
...                        ("s1", "running/shoes"), ("m1", "fitness/mats"), ("x1", "fitness/mats")):
...     snapshot.put(parse_item({"item_id": item, "categories": [category], "brand": "shady" if item == "x1" else "acme"}))
>>> blended = [("t1", 0.9, "personal"), ("t2", 0.8, "personal"), ("x1", 0.7, "personal"), ("t3", 0.6, "personal")]
>>> assemble(blended, snapshot, n=4, trending=[("s1", 1.0), ("m1", 0.5)], diversity_cap=2,
...          rules=parse_rules({"rules": [{"kind": "block", "brands": ["shady"]},
...                                       {"kind": "pin", "item": "m1", "position": 1}]}))
[('m1', 0.5, 'pinned'), ('t1', 0.9, 'personal'), ('t2', 0.8, 'personal'), ('s1', 1.0, 'trending')]
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Collection, Sequence

from online.catalog.diversity import DEFAULT_CAP, DEFAULT_WINDOW, diversify_prefix
from online.catalog.filters import Filters, Ranked, iter_refill
from online.catalog.rules import Block, Boost, Bury, NewArrivals, Pin, Promotion, Rule, Rules
from online.catalog.snapshot import CatalogSnapshot

__all__ = ["NO_FILTERS", "assemble"]

NO_FILTERS = Filters()
"""The default: only items in stock and available now (everything, while the catalog is empty)."""



def assemble(blended: Sequence[Ranked], snapshot: CatalogSnapshot, n: int, filters: Filters = NO_FILTERS,
             rules: Rules | None = None, category_trending: Sequence[tuple[str, float]] = (),
             trending: Sequence[tuple[str, float]] = (), seen: Collection[str] = (), now: float | None = None,
             diversity_cap: int = DEFAULT_CAP, diversity_window: int = DEFAULT_WINDOW) -> list[Ranked]:
    """The first ``n`` items of the served list, as ``(item_id, score, source)``.

    ``blended``: the blend's list, best first, as deep as there are candidates.
    ``category_trending`` / ``trending``: ``(item, relative popularity)`` lists
    that refill places the filters emptied (the request category's, then the
    global one). ``seen``: the user's items, left out when
    ``filters.exclude_seen``. ``now``: epoch seconds (default: the clock) for
    availability windows, rule windows and new arrivals. ``diversity_cap``
    items of one category (an item's first category) at most in the first
    ``diversity_window`` places; 0 turns the cap off. A score is the item's
    own (blend or popularity); a pinned or promoted item not among the
    candidates takes the score of the place it took.
    """
    now = time.time() if now is None else now
    active = rules.active(now) if rules is not None and rules.rules else []
    accept = filters.predicate(snapshot, now, seen if filters.exclude_seen else ())
    blocks = [rule for rule in active if isinstance(rule, Block)]
    if blocks:
        accept = _without_blocked(accept, blocks, snapshot)
    pins = [rule for rule in active if isinstance(rule, Pin) and rule.on_page(filters.categories) and accept(rule.item)]
    pinned = {pin.item for pin in pins}
    found = iter_refill(blended, (lambda item: item not in pinned and accept(item)) if pins else accept,
                        category_trending, trending)
    factors = [rule for rule in active if isinstance(rule, Boost | Bury | NewArrivals)]
    promotions = [rule for rule in active if isinstance(rule, Promotion)]
    # Rules that re-rank may lift any candidate: every one is needed. Otherwise enough for n places and the
    # diversity window, and more only if the cap asks for it (below).
    want = None if factors or promotions else 2 * max(n, diversity_window if diversity_cap > 0 else 0) + len(pins)
    pool = list(found if want is None else itertools.islice(found, want))
    exhausted = want is None or len(pool) < want
    if factors:
        pool = _boosted(pool, factors, snapshot, now)
    category = _category_of(snapshot)
    while True:
        fixed: dict[int, Ranked] = {}
        free = _pin(list(pool), fixed, pins, blended, category_trending, trending) if pins else pool
        for promotion in promotions:
            free = _promote(free, fixed, promotion, snapshot, n)
        listed = _layout(fixed, free)
        over = False
        if diversity_cap > 0 and len(snapshot):
            listed, over = diversify_prefix(listed, category, diversity_cap, min(diversity_window, len(listed)),
                                            fixed.keys())
        if exhausted or (len(listed) >= n and not over):
            return listed[:n]
        more = list(itertools.islice(found, len(pool)))  # the cap needed an item from further down: twice as many
        exhausted = len(more) < len(pool)
        pool += more


def _category_of(snapshot: CatalogSnapshot) -> Callable[[Ranked], int | None]:
    """An entry's diversity key: its first category's code (``None``: no category, or not in the catalog)."""
    rows, codes = snapshot._rows, snapshot._first_category

    def category(entry: Ranked) -> int | None:
        row = rows.get(entry[0], -1)
        return codes[row] or None if row >= 0 else None

    return category


def _without_blocked(accept: Callable[[str], bool], blocks: list[Block], snapshot: CatalogSnapshot) -> Callable[[str], bool]:
    items = frozenset(item for block in blocks for item in block.items)
    selectors = [block for block in blocks if block.categories or block.brands or block.tags]
    rows = snapshot._rows

    def allowed(item: str) -> bool:
        if item in items or not accept(item):
            return False
        row = rows.get(item, -1)
        return not any(block.matches(snapshot, item, row) for block in selectors)

    return allowed


def _boosted(pool: list[Ranked], rules: Sequence[Rule], snapshot: CatalogSnapshot, now: float) -> list[Ranked]:
    """``pool`` sorted again by rank score (``1 / (1 + place)``) times every matching rule's factor."""
    scores = []
    for place, (item, _, _) in enumerate(pool):
        row = snapshot.row(item)
        score = 1.0 / (1 + place)
        for rule in rules:
            if isinstance(rule, NewArrivals):
                created = snapshot.created_at(row) if row >= 0 else None
                if created is not None and 0.0 <= now - created < rule.max_age_s:
                    score *= rule.factor
            elif isinstance(rule, Boost | Bury) and rule.matches(snapshot, item, row):
                score *= rule.factor
        scores.append(score)
    order = sorted(range(len(pool)), key=lambda place: -scores[place])  # stable: ties keep their order
    return [pool[place] for place in order]


def _pin(pool: list[Ranked], fixed: dict[int, Ranked], pins: list[Pin], blended: Sequence[Ranked],
         *trending: Sequence[tuple[str, float]]) -> list[Ranked]:
    """Each pinned item put in ``fixed`` at its place (the next free one if taken); ``pool`` holds none of them.

    A pinned item keeps its blended score (or its popularity); one in neither takes the score of the place it takes.
    """
    scores = {item: score for popular in reversed(trending) for item, score in popular}
    scores.update((item, score) for item, score, _ in blended)
    for pin in sorted(pins, key=lambda rule: rule.position):
        if any(entry[0] == pin.item for entry in fixed.values()):
            continue
        place = pin.position - 1
        while place in fixed:
            place += 1
        score = scores.get(pin.item)
        if score is None:
            score = pool[min(place, len(pool) - 1)][1] if pool else 0.0
        fixed[place] = (pin.item, score, "pinned")
    return pool


def _promote(pool: list[Ranked], fixed: dict[int, Ranked], promotion: Promotion, snapshot: CatalogSnapshot,
             n: int) -> list[Ranked]:
    """At least ``promotion.slots`` of the first ``promotion.of`` (or ``n``) places hold matching items.

    Placing a promoted item pushes the window's last item out; when that one matched too, the count is short
    again, so it is taken again (at most ``slots`` rounds).
    """
    for _ in range(promotion.slots):
        promoted = len(fixed)
        pool = _promote_once(pool, fixed, promotion, snapshot, n)
        if len(fixed) == promoted:
            break
    return pool


def _promote_once(pool: list[Ranked], fixed: dict[int, Ranked], promotion: Promotion, snapshot: CatalogSnapshot,
                  n: int) -> list[Ranked]:
    limit = min(promotion.of or n, n)
    listed = _layout(fixed, pool)
    rule_filter = promotion.filter

    def matches(item: str) -> bool:
        return rule_filter.matches(snapshot, item, snapshot.row(item))

    need = promotion.slots - sum(1 for item, _, _ in listed[:limit] if matches(item))
    if need <= 0:
        return pool
    places = [place for place in range(limit) if place not in fixed]
    fixed_items = {entry[0] for entry in fixed.values()}
    below = [entry for entry in listed[limit:] if entry[0] not in fixed_items and matches(entry[0])][:need]
    if not below or not places:
        return pool
    below = below[:len(places)]
    # evenly over the free places: one promotion in 10 places lands 5th, two land 4th and 7th
    targets = [places[min(len(places) - 1, (j + 1) * len(places) // (len(below) + 1))] for j in range(len(below))]
    taken = {entry[0] for entry in below}
    rest = [entry for entry in pool if entry[0] not in taken]
    for place, (item, score, _) in zip(targets, below, strict=True):
        while place in fixed:
            place += 1
        fixed[place] = (item, score, "promotion")
    return rest


def _layout(fixed: dict[int, Ranked], pool: list[Ranked]) -> list[Ranked]:
    """The list with ``fixed`` entries at their places and ``pool`` in order around them."""
    if not fixed:
        return list(pool)
    out: list[Ranked] = []
    free = iter(pool)
    total = len(pool) + len(fixed)
    for place in range(total):
        if place in fixed:
            out.append(fixed[place])
        else:
            entry = next(free, None)
            if entry is None:
                break
            out.append(entry)
    out.extend(entry for place, entry in sorted(fixed.items()) if place >= len(out) and entry not in out)
    return out
