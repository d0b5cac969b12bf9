"""The user-list stage's reads give what they gave before they were made cheaper (docs/performance.md, branch flow8).

``CoVisitationNeighbours.top`` reads in place (what ``list()`` of a snapshot gave), ``NeighbourCandidates.rank``
reads a list of recent items by index and ``SessionEmbedding.learn_one`` a tuple embedding natively; any other
sequence must give the same, bit for bit. A new user's first reply takes the state made with the key's logic.
"""

from __future__ import annotations

import pickle
import random

from flows.stages.messages import NeighbourReply, Touch
from flows.stages.user_lists import UserListLogic, UserListState
from online.affinity import CategoryAffinity
from online.contract import Settings
from online.covisitation import CoVisitationNeighbours
from online.item_embedding import DIM, SessionEmbedding
from online.neighbour_candidates import NeighbourCandidates


def test_top_is_the_snapshot_read_as_pairs() -> None:
    rng = random.Random(5)
    for trial in range(200):
        neighbours = CategoryAffinity(capacity=8) if trial % 2 else CoVisitationNeighbours(capacity=30)
        for step in range(rng.randrange(0, 60)):
            neighbours.learn_one(f"i{rng.randrange(40)}", rng.choice((0.5, 1.0, 3.0)), 1.7e9 + 60.0 * step)
        for k in (-1, 0, 1, 3, 8, 30, 100):
            assert neighbours.top(k) == list(neighbours.snapshot(max(k, 0)))


def test_rank_of_a_tuple_or_a_list_of_recent_items_is_the_same() -> None:
    rng = random.Random(8)
    for _ in range(200):
        candidates = NeighbourCandidates()
        items = [f"i{n}" for n in range(30)]
        for item in items:
            candidates.learn_one(item, [(other, rng.random() + 0.01) for other in rng.sample(items, rng.randrange(0, 12))])
        recent = [(rng.choice(items), rng.choice((-1.0, 0.0, 1.0, 2.0, 5.0)), 1.7e9 - n) for n in range(rng.randrange(0, 16))]
        sessions = {rng.choice(items): rng.random() + 0.1 for _ in range(rng.randrange(0, 4))} or None
        for recent_weight, decay in ((0.0, 2.0), (0.25, 1.0), (3.0, 2.0)):
            args = dict(recent_weight=recent_weight, position_decay=decay, sessions=sessions, session_weight=0.5)
            assert candidates.rank(tuple(recent), 10, {"i3"}, **args) == candidates.rank(recent, 10, {"i3"}, **args)


def test_a_session_embedding_learns_the_same_from_a_tuple_or_a_list() -> None:
    rng = random.Random(3)
    as_tuples, as_lists = SessionEmbedding(), SessionEmbedding()
    for _ in range(50):
        embedding = tuple(rng.uniform(-2.0, 2.0) for _ in range(DIM))
        weight, norm = rng.choice((0.5, 1.0, 2.0)), rng.uniform(0.5, 3.0)
        as_tuples.learn_one(embedding, weight, norm)
        as_lists.learn_one(list(embedding), weight, norm)
        assert as_tuples.raw() == as_lists.raw()


def test_a_new_users_first_reply_takes_the_state_made_for_the_key() -> None:
    """Bytewax makes a logic (and its empty state) for a new user; the first reply's life is given to that
    state instead of a second one: the outputs and the state pickle the same as with a state made for that life."""
    touch = Touch("a", "ann", "1-0", 1, 1.0, 1.7e9, 1, "shoes", [], "s", [("a", 1.0, 1.7e9)], [], life=123)
    replies = [NeighbourReply("a", [("c", 1.0), ("d", 0.5)], touch, (0.5,) * DIM, 1.0)]
    logic = UserListLogic(Settings(), None, recoverable=False)
    made = logic.state
    out, _ = logic.on_batch(replies)
    assert logic.state is made and made.life == 123
    other = UserListLogic(Settings(), None, recoverable=False)
    other.state = UserListState(NeighbourCandidates(), life=123)
    expected, _ = other.on_batch(replies)
    assert repr(out) == repr(expected)
    assert pickle.dumps(logic.state) == pickle.dumps(other.state)
    later = Touch("b", "ann", "2-0", 1, 1.0, 1.7e9 + 5, 2, None, [], "t", [("b", 1.0, 1.7e9 + 5)], [], life=456)
    logic.on_batch([NeighbourReply("b", [], later)])  # a used state: a newer life starts a new one
    assert logic.state is not made and logic.state.life == 456 and made.life == 123
