"""The guided attention network and its copy folded for inference."""
import pytest
import torch
from torch import nn

from sure_core.networks import FeatureRefinementUnit, GuidedAttentionNet, inference_copy


@pytest.fixture()
def trained_like_net():
    """A small network with non-trivial weights and BatchNorm running statistics (as after training)."""
    torch.manual_seed(0)
    net = GuidedAttentionNet(4, 8, 8, width=16, skip_width=8, output="linear")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, 0.3)
                m.bias.normal_(0, 0.5)
            if isinstance(m, nn.BatchNorm2d) and m.affine:
                m.weight.uniform_(0.5, 2.0)
                m.bias.normal_(0, 0.3)
        net.train()
        for _ in range(3):
            net(torch.randn(2, 12, 48, 48) * 2 + 1)
    return net.eval()


def test_inference_copy_gives_the_outputs_of_the_network_in_eval_mode(trained_like_net):
    z = torch.randn(1, 12, 90, 78) * 3  # odd shapes, not a multiple of anything
    with torch.no_grad():
        expected = trained_like_net(z)
        got = inference_copy(trained_like_net)(z)
        got_channels_last = inference_copy(trained_like_net)(z.contiguous(memory_format=torch.channels_last))
    scale = float(expected.abs().max())
    assert scale > 1.0  # the check is not on a near-zero output
    assert float((got - expected).abs().max()) < 1e-5 * scale
    assert float((got_channels_last - expected).abs().max()) < 1e-5 * scale


def test_inference_copy_folds_batch_norm_and_leaves_the_original_alone(trained_like_net):
    before = {k: v.clone() for k, v in trained_like_net.state_dict().items()}
    folded = inference_copy(trained_like_net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert not any(isinstance(m, (nn.Softplus, nn.Sigmoid)) for m in folded.modules())
    assert all(not p.requires_grad for p in folded.parameters())
    # the trained network keeps its BatchNorm layers, weights and gradients: training can go on
    assert sum(isinstance(m, nn.BatchNorm2d) for m in trained_like_net.modules()) == 6
    assert all(isinstance(m.weight, nn.Sequential) for m in trained_like_net.modules()
               if isinstance(m, FeatureRefinementUnit))
    assert all(p.requires_grad for p in trained_like_net.parameters())
    after = trained_like_net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_gate_identity_holds_for_large_and_small_arguments():
    a = torch.tensor([-80.0, -20.0, -1.0, 0.0, 0.7, 5.0, 19.0, 25.0, 80.0])
    direct = torch.sigmoid(nn.functional.softplus(a))
    folded = 1 - 0.5 * torch.sigmoid(torch.log(torch.tensor(2.0)) - a)
    assert torch.allclose(direct, folded, atol=1e-6)
