"""The penalties r(z) and their prox live in :mod:`precond.glm.penalties`; this module keeps the
old import path."""

from precond.glm.penalties import L1 as L1
from precond.glm.penalties import Box as Box
from precond.glm.penalties import BoxHyperplane as BoxHyperplane
from precond.glm.penalties import ElasticNetPenalty as ElasticNetPenalty
from precond.glm.penalties import project_box_hyperplane as project_box_hyperplane
from precond.glm.penalties import soft_threshold as soft_threshold

__all__ = ["soft_threshold", "L1", "ElasticNetPenalty", "Box", "BoxHyperplane",
           "project_box_hyperplane"]
