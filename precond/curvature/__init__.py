"""Curvature operators of a JAX loss: Hessian, Gauss–Newton, Fisher, empirical Fisher.

Conventions: ``loss_fn(params, batch) -> scalar`` and ``model_fn(params, inputs) -> outputs``;
a batch for the GGN/Fisher is ``(inputs, targets)``.  ``params`` is any pytree (dicts, flax,
equinox).  Pytree-level products (``hvp``, ``ggn_vector_product``) take and return pytrees; the
``*_operator`` forms act on flat vectors (``jax.flatten_util.ravel_pytree`` order) for
``precond.linalg``.  They are closure-free pytrees (leaves: params and batch; static: the
functions), so new operators at new points do not recompile, and they linearize once per solve
(``LinearOperator.linearize``): the one linearized Hessian and GGN of precond, shared by
``hessian_linear_map``/``ggn_linear_map`` (gradient and products from one linearization).
"""

from .ggn import GaussNewtonOperator as GaussNewtonOperator
from .ggn import empirical_fisher_operator as empirical_fisher_operator
from .ggn import fisher_operator as fisher_operator
from .ggn import ggn_linear_map as ggn_linear_map
from .ggn import ggn_operator as ggn_operator
from .ggn import ggn_vector_product as ggn_vector_product
from .gradients import minibatch_gradients as minibatch_gradients
from .gradients import per_example_gradients as per_example_gradients
from .hessian import HessianOperator as HessianOperator
from .hessian import bind_batch as bind_batch
from .hessian import hessian_linear_map as hessian_linear_map
from .hessian import hessian_operator as hessian_operator
from .hessian import hvp as hvp
from .layers import DenseLayer as DenseLayer
from .layers import LayerCapture as LayerCapture
from .layers import capture_dense_layers as capture_dense_layers
from .layers import find_dense_layers as find_dense_layers
from .output_losses import OutputLoss as OutputLoss
from .output_losses import get_output_loss as get_output_loss
from .output_losses import mean_squared_error as mean_squared_error
from .output_losses import sigmoid_cross_entropy as sigmoid_cross_entropy
from .output_losses import softmax_cross_entropy as softmax_cross_entropy
from .pytree import flat_operator as flat_operator
from .pytree import ravel as ravel
