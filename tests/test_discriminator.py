"""The adversarial losses: hinge values and the separation of the two players' gradients."""

from __future__ import annotations

import torch

from mrt.models.discriminator import PatchDiscriminator, adversarial_losses


def test_patch_discriminator_shape() -> None:
    d = PatchDiscriminator(width=16)
    assert d(torch.rand(2, 3, 64, 48)).shape == (2, 1, 8, 6)


def test_generator_and_discriminator_gradients_are_separated() -> None:
    torch.manual_seed(0)
    disc = PatchDiscriminator(width=16)
    gain = torch.nn.Parameter(torch.tensor(0.7))  # stands in for the generator
    real = torch.rand(2, 3, 32, 32)
    fake = (real.flip(-1) * gain).clamp(0, 1)
    adv = adversarial_losses(disc, fake, real)

    g_grads = torch.autograd.grad(adv.generator, [gain, *disc.parameters()], allow_unused=True)
    assert g_grads[0] is not None and g_grads[0].abs() > 0  # the generator term moves the generator...
    assert all(g is None or not g.abs().any() for g in g_grads[1:])  # ...and never the discriminator

    d_grads = torch.autograd.grad(adv.discriminator, [gain, *disc.parameters()], allow_unused=True)
    assert d_grads[0] is None or not d_grads[0].abs().any()  # the discriminator term never moves G
    assert any(g is not None and g.abs().any() for g in d_grads[1:])


def test_hinge_values() -> None:
    class Const(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.b = torch.nn.Parameter(torch.tensor(0.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(1, 2, 3), keepdim=True) * 4.0 - 2.0 + self.b  # all-ones -> +2, zeros -> -2

    adv = adversarial_losses(Const(), torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
    assert float(adv.discriminator.detach()) == 0.0  # real scored +2 >= 1, fake -2 <= -1: both margins met
    assert float(adv.generator.detach()) == 2.0
    assert adv.real_score == 2.0 and adv.fake_score == -2.0
