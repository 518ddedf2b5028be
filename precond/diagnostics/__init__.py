"""Seed 001's design criteria, measured: local conditioning L̂, ĉ, κ̂ of M⁻¹H, the preconditioned
noise level K = tr(M⁻¹Σ), the noise floor and admissible steps, spectral densities before and
after M, and empirical basin stability.

Inputs made of several samples (the mini-batch gradients of :func:`noise_level`, the mini-batches
of :func:`diagnose`) have one meaning throughout: a Python ``list`` holds B samples, one per
element (each an array or a pytree); every other input (an array, a tuple, a dict, any pytree)
is stacked, with the sample index on the leading axis of each leaf.  So a list of 6 gradients is
B = 6 for both.
"""

from .basin import BasinStability as BasinStability
from .basin import basin_stability as basin_stability
from .basin import m_distances as m_distances
from .conditioning import Conditioning as Conditioning
from .conditioning import IndefiniteCurvatureWarning as IndefiniteCurvatureWarning
from .conditioning import local_conditioning as local_conditioning
from .noise import NoiseLevel as NoiseLevel
from .noise import noise_level as noise_level
from .noise import stack_gradients as stack_gradients
from .report import DesignReport as DesignReport
from .report import diagnose as diagnose
from .spectra import plot_spectral_densities as plot_spectral_densities
from .spectra import spectral_densities as spectral_densities
from .theory import harmonic_constant as harmonic_constant
from .theory import lyapunov_floor as lyapunov_floor
from .theory import max_stable_step as max_stable_step
from .theory import noise_floor as noise_floor
from .theory import recommended_step as recommended_step
