"""The PyTorch step: mini-batch SGD on the summed gradients of a batch, in closed form, for every head on any device,
reproducible with any number of threads (plan.py chooses it where the compiled steps cannot run, or when asked)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.heads import EXACT, LOGISTIC


@torch.no_grad()
def torch_step(model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True):
    """One SGD step of PyTorch ops: gradients in closed form (no autograd graph), applied to the rows of the
    batch (index_add_ sums repeated rows)."""
    head = model.head
    hidden = model.hidden(inputs, mask)  # (B, D)
    if head.family == EXACT:
        loss, grad_hidden = _exact(head, hidden, targets, lr, need_loss)
    else:
        loss, grad_hidden = _sampled(head, hidden, head.candidates(targets, generator), lr, need_loss)
    model.add_to_inputs(inputs, mask, grad_hidden.mul_(-lr))  # index_add_ without alpha: see _sampled
    return loss


def gradients(head, hidden, cand, need_loss: bool = True):
    """Closed-form gradients of a sampled or tree head: (loss (B,) or a probe, the gathered output rows
    (B, C, D), d loss / dΔ (B, C), d loss / d hidden (B, D))."""
    flat = cand.rows.reshape(-1)  # (B C,)
    # index_select and mul+sum are several times faster on the CPU than fancy indexing and tiny bmm's
    out = head.weight.index_select(0, flat).view(*cand.rows.shape, -1)  # (B, C, D)
    delta = (out * hidden[:, None, :]).sum(-1) + head.bias.index_select(0, flat).view(cand.rows.shape) + cand.shift
    if head.family == LOGISTIC:
        g = (torch.sigmoid(delta) - cand.labels) * cand.valid  # d softplus((1 - 2y) Δ) / dΔ = σ(Δ) - y
        loss = (F.softplus((1 - 2 * cand.labels) * delta) * cand.valid).sum(1) if need_loss else None
    else:  # softmax over the valid candidates, the target first: d loss / dΔ = softmax - onehot
        masked = delta.masked_fill(~cand.valid, -torch.inf)
        g = torch.softmax(masked, 1)
        g[:, 0] -= 1.0
        loss = torch.logsumexp(masked, 1) - delta[:, 0] if need_loss else None
    if loss is None:  # the loss is finite exactly when every score is: 0 if so, NaN if not
        loss = (delta * cand.valid).sum() * 0.0
    grad_hidden = torch.bmm(g[:, None, :], out).squeeze(1)  # (B, D)
    return loss, out, g, grad_hidden


def _sampled(head, hidden, cand, lr, need_loss):
    loss, _, g, grad_hidden = gradients(head, hidden, cand, need_loss)
    flat = cand.rows.reshape(-1)
    g = g.mul_(-lr)  # fold the rate into the small tensor: index_add_ with alpha is 3x slower on the CPU
    head.weight.index_add_(0, flat, (g[:, :, None] * hidden[:, None, :]).view(len(flat), -1))
    if head.learns_bias:
        head.bias.index_add_(0, flat, g.view(-1))
    return loss.sum(), grad_hidden


def _exact(head, hidden, targets, lr, need_loss):
    logits = head.scores(hidden)  # (B, V)
    loss = F.cross_entropy(logits, targets, reduction="sum")
    g = torch.softmax(logits, dim=-1)  # d loss / d logits = softmax - onehot
    g[torch.arange(len(targets), device=g.device), targets] -= 1.0
    grad_hidden = g @ head.weight  # (B, D), with the weights before this step
    # The exact softmax gradient touches every output row: the one dense update in the project.
    head.weight.addmm_(g.T, hidden, alpha=-lr)  # (V, D)
    head.bias.sub_(g.sum(0), alpha=lr)
    return (loss if need_loss else loss * 0.0), grad_hidden  # 0 * NaN stays NaN: the finiteness probe
