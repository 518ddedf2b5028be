"""Generalized linear models: the pieces every GLM solver shares, and nothing of any solver.

A GLM objective is ℓ(Ax) + r(x): a data operator A (m, d), a separable loss ℓ of the
predictions t = Ax, and a penalty r.  This layer holds each piece once:

* data (:mod:`.data`) — :func:`data_operator` (dense or sparse A for full products),
  :class:`CenteredOperator` and :class:`AppendOnesOperator` (intercepts), and
  :func:`row_storage` (:class:`DenseRows`, :class:`EllRows`: rows a jitted epoch can sample);
* losses (:mod:`.losses`) — :class:`SquaredLoss`, :class:`LogisticLoss` with φ, φ′, φ″;
* the Gram/Hessian operator (:mod:`.gram`) — :class:`GramOperator` c·Aᵀdiag(w)A + μI, and
  :func:`dense_gram` to form it;
* penalties (:mod:`.penalties`) — :class:`L1`, :class:`ElasticNetPenalty`, :class:`Box`,
  :class:`BoxHyperplane` with their prox, :func:`soft_threshold`,
  :func:`project_box_hyperplane`.

``precond.composite`` (NysADMM) and ``precond.stochastic`` (PROMISE) build their problems from
these; ``precond.glm`` imports only ``precond.linalg`` and ``precond.validation``.
"""

from .data import AppendOnesOperator as AppendOnesOperator
from .data import CenteredOperator as CenteredOperator
from .data import DenseRows as DenseRows
from .data import EllRows as EllRows
from .data import data_operator as data_operator
from .data import row_storage as row_storage
from .gram import GramOperator as GramOperator
from .gram import dense_gram as dense_gram
from .gram import has_dense_gram as has_dense_gram
from .losses import LogisticLoss as LogisticLoss
from .losses import SquaredLoss as SquaredLoss
from .penalties import L1 as L1
from .penalties import Box as Box
from .penalties import BoxHyperplane as BoxHyperplane
from .penalties import ElasticNetPenalty as ElasticNetPenalty
from .penalties import project_box_hyperplane as project_box_hyperplane
from .penalties import soft_threshold as soft_threshold
