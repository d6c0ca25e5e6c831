import torch
from torch import nn

from trainables.cost import count_flops, count_params, model_cost


def test_flops_count_a_multiply_add_as_two():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    conv = 2 * 8 * 16 * 16 * 3 * 3 * 3
    linear = 2 * 8 * 16 * 16 * 10
    assert count_flops(model, (3, 16, 16)) == conv + linear
    assert count_params(model) == 8 * 3 * 9 + 8 * 16 * 16 * 10 + 10


def test_model_cost_fields():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    cost = model_cost(model, (1, 8, 8), torch.device("cpu"))
    assert cost["macs"] * 2 == cost["flops"] > 0
    assert set(cost) == {"flops", "macs", "params"}
