"""SelfAttention_v1 with its (d_in, d_out) parameters applied through einsum and the scale applied to the queries."""

import torch
import torch.nn as nn


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        q = torch.einsum("td,de->te", x, self.W_query) / self.W_key.shape[1] ** 0.5
        k = torch.einsum("td,de->te", x, self.W_key)
        v = torch.einsum("td,de->te", x, self.W_value)
        return torch.softmax(torch.einsum("ie,je->ij", q, k), dim=1) @ v
