"""Reference recommenders for the evaluation driver.

They follow the same small protocol as livereco's models (``learn_one(event)``
then ``recommend(user_id, n)``, :class:`online.protocol.Recommender`) and run
through exactly the same driver, protocol and candidate rule as livereco
(``flows/evaluation.py``; docs/quality.md). A model with a ``GRID`` has its
first parameter (a half-life, a learning rate) chosen on the validation part
by ``livereco eval``.

* :mod:`~online.baselines.popularity`: most popular, and decayed popularity;
* :mod:`~online.baselines.covisitation`: last-item co-visitation (next click);
* :mod:`~online.baselines.item_knn`: asymmetric-cosine item-kNN over users' whole histories, filled with popularity;
* :mod:`~online.baselines.bpr`: online matrix factorisation with sampled negatives (BPR);
* :mod:`~online.baselines.river_mf`: River's biased MF without negatives, for reference (it collapses).

Examples
--------
>>> from online.contract import Event
>>> stream = [Event("s1", "a", "view", 0.0), Event("s1", "b", "view", 1.0),
...           Event("s2", "a", "view", 2.0), Event("s2", "b", "view", 3.0), Event("s3", "c", "view", 4.0)]
>>> pop, covis = MostPopular(), LastItemCoVisitation()
>>> for e in stream:
...     pop.learn_one(e)
...     covis.learn_one(e)
>>> pop.recommend("anyone", 2)
['a', 'b']
>>> covis.learn_one(Event("s4", "a", "view", 5.0))
>>> covis.recommend("s4", 2)
['b']
"""

from online.baselines.bpr import BPRMatrixFactorisation
from online.baselines.covisitation import LastItemCoVisitation
from online.baselines.item_knn import ItemKNN
from online.baselines.popularity import DecayedPopularity, MostPopular
from online.baselines.river_mf import MatrixFactorisation

__all__ = ["BPRMatrixFactorisation", "DecayedPopularity", "ItemKNN", "LastItemCoVisitation", "MatrixFactorisation",
           "MostPopular"]
