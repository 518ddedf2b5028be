"""scikit-learn estimators over precond.composite (NysADMM) and precond.linalg (Nyström PCG).

Drop-in for the scikit-learn estimators of the same names where the objective is the same:
``Lasso``, ``ElasticNet``, ``LogisticRegression`` (ℓ1/elastic-net through ``C`` and
``l1_ratio``), kernel ``SVC`` (RBF or linear) and ``Ridge``.  The classifiers handle k > 2
classes one-vs-rest.  Every estimator computes in float64 (as scikit-learn does) whatever
``jax_enable_x64`` says, also in joblib's worker processes; ``dtype=np.float32`` opts out.
"""

from .linear import ElasticNet as ElasticNet
from .linear import Lasso as Lasso
from .linear import Ridge as Ridge
from .logistic import LogisticRegression as LogisticRegression
from .svm import SVC as SVC
