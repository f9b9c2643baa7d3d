"""A bank: K networks of one architecture trained as one stacked model (issue: the bill, second step).

``torch.func.stack_module_state`` stacks the members' parameters and buffers along a new first dimension, and
``vmap`` over ``functional_call`` runs every member on its own batch in the same kernels (a batched convolution
is a grouped one). Each member keeps its own initialization, BatchNorm statistics and, with an element-wise
optimizer over the stacked tensors (SGD's momentum and weight decay, AdamW's moments), its own optimizer state:
the loss is the sum of the members' own losses, so each member's gradient is the one it would get alone. A member
is unstacked back into an ordinary state_dict (``member_state``) for its own checkpoint.

This is the bank's core; the stages do not train banks yet (retrain.bank is the next step). Measured on a CPU
(benchmarks/bench_bank.py), a bank is not faster: a grouped convolution costs more there than its K convolutions
one after the other; the gain is a GPU's, whose small networks leave it idle between kernel launches.
"""

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class Bank(nn.Module):
    """``forward(x)`` with x (K, B, ...) gives (K, B, classes): member k on its own batch x[k]."""

    def __init__(self, members: list):
        super().__init__()
        shapes = {tuple((n, tuple(v.shape)) for n, v in m.state_dict().items()) for m in members}
        if len({type(m) for m in members}) != 1 or len(shapes) != 1:
            raise ValueError("a bank's members must share one architecture")
        params, buffers = stack_module_state(members)
        self.names = list(params)
        self.stacked = nn.ParameterList(
            [nn.Parameter(params[n].detach().clone(), requires_grad=params[n].requires_grad) for n in self.names]
        )
        for i, value in enumerate(buffers.values()):
            self.register_buffer(f"buffer_{i}", value.clone())
        self.buffer_names = list(buffers)
        self.size = len(members)
        self._template = (copy.deepcopy(members[0]).to("meta"),)  # a tuple: not a submodule (it has no data)

    def _state(self):
        params = dict(zip(self.names, self.stacked))
        buffers = {n: getattr(self, f"buffer_{i}") for i, n in enumerate(self.buffer_names)}
        return params, buffers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        template = self._template[0]
        template.train(self.training)
        params, buffers = self._state()
        return vmap(lambda p, b, xk: functional_call(template, (p, b), (xk,)))(params, buffers, x)

    def member_state(self, k: int) -> dict:
        """Member ``k``'s state_dict, as its own network would hold it."""
        params, buffers = self._state()
        return {n: v[k].detach().clone() for n, v in {**params, **buffers}.items()}


def member_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(K,) each member's mean cross-entropy on its own batch; their sum is what a bank's step minimizes."""
    k, b = labels.shape
    per = nn.functional.cross_entropy(logits.reshape(k * b, -1), labels.reshape(-1), reduction="none")
    return per.view(k, b).mean(1)
