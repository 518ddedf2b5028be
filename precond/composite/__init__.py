"""Composite problems min f(x) + r(x) solved by NysADMM: problem builders (lasso, elastic net,
ℓ1-logistic, kernel SVM dual, box constraints) and the solver.

The losses ℓ(Ax), penalties with their prox and data operators are :mod:`precond.glm`'s; the
names below that come from there (``SquaredLoss``, ``LogisticLoss``, ``L1``,
``ElasticNetPenalty``, ``Box``, ``BoxHyperplane``, ``soft_threshold``,
``project_box_hyperplane``, ``data_operator``) are re-exported for the old import paths."""

from .losses import LogisticLoss as LogisticLoss
from .losses import SquaredLoss as SquaredLoss
from .nysadmm import ADMMHistory as ADMMHistory
from .nysadmm import ADMMResult as ADMMResult
from .nysadmm import nysadmm as nysadmm
from .problems import LossProblem as LossProblem
from .problems import QuadraticProblem as QuadraticProblem
from .problems import box_least_squares as box_least_squares
from .problems import data_operator as data_operator
from .problems import elastic_net as elastic_net
from .problems import l1_logistic as l1_logistic
from .problems import lasso as lasso
from .problems import linear_kernel as linear_kernel
from .problems import nonnegative_least_squares as nonnegative_least_squares
from .problems import rbf_kernel as rbf_kernel
from .problems import svm_dual as svm_dual
from .problems import svm_intercept as svm_intercept
from .prox import L1 as L1
from .prox import Box as Box
from .prox import BoxHyperplane as BoxHyperplane
from .prox import ElasticNetPenalty as ElasticNetPenalty
from .prox import project_box_hyperplane as project_box_hyperplane
from .prox import soft_threshold as soft_threshold
