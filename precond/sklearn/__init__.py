"""scikit-learn estimators over precond.composite (NysADMM) and precond.linalg (Nyström PCG).

Drop-in for the scikit-learn estimators of the same names where the objective is the same:
``Lasso``, ``ElasticNet``, binary ``LogisticRegression`` (ℓ1/elastic-net through ``C`` and
``l1_ratio``), binary kernel ``SVC`` (RBF or linear) and ``Ridge``.
"""

from .linear import ElasticNet as ElasticNet
from .linear import Lasso as Lasso
from .linear import Ridge as Ridge
from .logistic import LogisticRegression as LogisticRegression
from .svm import SVC as SVC
