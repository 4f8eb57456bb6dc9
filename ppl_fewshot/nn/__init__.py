"""Plain ``nn.Module`` building blocks (no Pyro inference here).

Every module here broadcasts over extra leading dimensions: an input
``[..., C, H, W]`` or ``[..., D]`` gives an output with the same leading dims, so
that vectorized particles work without Python loops.
"""

from ppl_fewshot.nn.conv import (
    MLP,
    ConvDecoder,
    ConvEncoder,
    batch_norm_layers,
    batch_statistics,
)
from ppl_fewshot.nn.resnet import ResDecoder, ResEncoder, image_decoder, image_encoder
from ppl_fewshot.nn.sets import (
    GaussianProductEncoder,
    SetEncoder,
    gaussian_product,
    masked_mean,
    sample_dropout,
    sorted_sum,
)

__all__ = ["MLP", "ConvDecoder", "ConvEncoder", "GaussianProductEncoder", "ResDecoder",
           "ResEncoder", "SetEncoder", "batch_norm_layers", "batch_statistics",
           "gaussian_product", "image_decoder", "image_encoder", "masked_mean", "sample_dropout",
           "sorted_sum"]
