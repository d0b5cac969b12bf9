"""Each user's recent-item weight follows how often they go back to their own items (online.returning).

Through the real flow and Redis: a user who never returns to an item (films)
stops being recommended what they had, a user who keeps returning (a shopper)
keeps their recent items in their list, and ``LIVERECO_RECENT_ADAPTIVE=0``
brings back the fixed weight for everyone.
"""

from __future__ import annotations

import dataclasses

import redis
from bytewax.testing import run_main

from flows.dataflow import build_flow
from flows.event_writer import EventWriter
from online.contract import Event, Settings, decode_candidates
from online.returning import ReturnRate

T0 = 1_700_000_000.0
FILMS = [f"film{n}" for n in range(14)]


def _events() -> list[Event]:
    # A crowd watches the films in order, so each film's neighbours are the ones around it; then a
    # cinephile watches all of them once, and a shopper keeps going back to the two shoes they compare.
    crowd = [Event(f"crowd{u}", film, "view", T0 + 100 * u + n) for u in range(6) for n, film in enumerate(FILMS)]
    cinephile = [Event("cinephile", film, "view", T0 + 5000 + n) for n, film in enumerate(FILMS)]
    shopper = [Event("shopper", item, "view", T0 + 6000 + n)
               for n, item in enumerate(["shoe1", "shoe2", "shoe1", "shoe2", "film0", "shoe1", "shoe2", "shoe1"])]
    return crowd + cinephile + shopper


def _lists(redis_client: redis.Redis, settings: Settings) -> dict[str, list[str]]:
    settings = dataclasses.replace(settings, partitions=1, read_count=1)
    EventWriter(redis_client, settings.keys).append(_events())
    run_main(build_flow(settings, stop_at_end=True))
    return {user: decode_candidates(redis_client.get(settings.keys.user_recs(user))).items
            for user in ("cinephile", "shopper")}


def test_a_user_who_never_returns_is_not_recommended_what_they_had(redis_client: redis.Redis,
                                                                   settings: Settings) -> None:
    lists = _lists(redis_client, dataclasses.replace(settings, recent_weight=3.0, recent_adaptive=1))
    assert not set(lists["cinephile"]) & set(FILMS)  # every film seen once: none comes back
    assert {"shoe1", "shoe2"} <= set(lists["shopper"][:3])  # the shopper's own shoes lead their list


def test_without_adaptation_every_user_gets_their_recent_items_back(redis_client: redis.Redis,
                                                                    settings: Settings) -> None:
    lists = _lists(redis_client, dataclasses.replace(settings, recent_weight=3.0, recent_adaptive=0))
    assert set(lists["cinephile"]) & set(FILMS[-5:])  # the fixed weight recommends the last films back
    assert {"shoe1", "shoe2"} <= set(lists["shopper"][:3])


def test_a_return_rate_survives_a_snapshot() -> None:
    import pickle

    rate = ReturnRate()
    for returned in (False, True, False):
        rate.learn_one(returned)
    restored = pickle.loads(pickle.dumps(rate))
    assert (restored.chances, restored.returns, restored.weight(3.0)) == (rate.chances, rate.returns, rate.weight(3.0))
