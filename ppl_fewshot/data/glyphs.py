"""``glyphs``: a synthetic, Omniglot-like hierarchy of stroke characters written in Pyro.

A small probabilistic program in the spirit of Bayesian Program Learning [1]: alphabets
have a style, characters are a few spline strokes built from their alphabet's primitives,
tokens (drawings) of a character add motor noise and an affine jitter, and a soft
rasterizer renders each token at 28x28. Classes within one alphabet share primitives,
stroke counts and stroke width, so the data has Omniglot's alphabet -> character -> drawing
hierarchy [2] while every image comes with its exact generating latents.

Generative story::

    for each alphabet a:                                  # plate "alphabets"
        pi_a     ~ Dirichlet(1, 3, 3, 2)                  # preferred number of strokes 1..4
        kappa_a  ~ LogNormal(log 0.5, 0.5)                # how curly its strokes are
        w_a      ~ LogNormal(log 1.0, 0.15)               # stroke half-width, pixels at 28x28
        rho_a    ~ Beta(6, 2)                             # how often a stroke joins an earlier one
        for each primitive k < K:                         # plate "primitives"
            heading_ak ~ Uniform(-pi, pi)
            turn_ak    ~ Normal(0, kappa_a)
            length_ak  ~ LogNormal(log 0.6, 0.25)
            d_ak = 4 steps of length_ak / 4 along heading_ak + turn_ak * (j - 1.5)
    for each character c, alphabet a = c mod A:           # plate "characters"
        n_c ~ Categorical(pi_a) + 1                       # site holds n_c - 1 (0-based)
        w_c ~ LogNormal(log w_a, 0.1)
        for each stroke slot s < 4:                       # plate "strokes"; slots >= n_c unused
            k_cs ~ Categorical(uniform over K);  scale_cs ~ LogNormal(0, 0.25)
            e_cs ~ Normal(0, 0.25 I)                      # the character's own bend of k_cs
            D_cs = scale_cs * (d_{a k_cs} + e_cs * length_{a k_cs} / 4)
            joined_cs ~ Bernoulli(rho_a);  parent_cs = floor(r_cs * s), r_cs ~ Uniform(0, 1)
            u_cs ~ Beta(0.4, 0.4);         free_cs ~ Uniform(-0.4, 0.4)^2
        strokes are centred, then each axis scaled to span 1.3 of the [-1, 1] canvas
        (the short axis by at most twice the long one's factor)
    for each token t of character c:                      # plate "tokens"
        D_tcs ~ Normal(D_cs, 0.035);  free_tcs ~ Normal(free_cs, 0.035)     # motor noise
        start_tcs = point u_cs along stroke parent_cs if joined_cs else free_tcs
        control points = start_tcs + cumsum(D_tcs);  curve = Catmull-Rom spline through them
        A_tc = scale ~ LogNormal(0, .06), rotation ~ N(0, .08), shear ~ N(0, .08),
               shift ~ N(0, .04 I)                        # affine jitter
        w_tc ~ LogNormal(log w_c, 0.08)
        p_tc = render_strokes(A_tc(curves), 28, w_tc)      # grey ink in [0, 1]
        x_tc ~ Bernoulli(p_tc)                             # site "image" (observe binary images)

Sampling is vectorized: every site is drawn for all alphabets, characters and tokens at
once; only the four stroke slots are visited in turn (a stroke's start may lie on an earlier
stroke). :func:`make_glyphs` runs the program under a private seed and returns the grey
images ``p`` as a :class:`~ppl_fewshot.data.base.ClassDataset`.

References:
    [1] Lake, Salakhutdinov & Tenenbaum, "Human-level concept learning through
        probabilistic program induction", Science 350(6266), 2015.
    [2] Lake, Salakhutdinov & Tenenbaum, "The Omniglot challenge: a 3-year progress
        report", Current Opinion in Behavioral Sciences 29, 2019.
    [3] Catmull & Rom, "A class of local interpolating splines", Computer Aided
        Geometric Design, 1974.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import Tensor

from ppl_fewshot.data.base import ClassDataset

logger = logging.getLogger(__name__)

MAX_STROKES = 4
NUM_CONTROL = 5  # control points per stroke (4 displacements)
SAMPLES_PER_SEGMENT = 10
CANVAS_EXTENT = 1.3  # a character's larger side, in [-1, 1] canvas units


@dataclass
class AlphabetStyle:
    """Latents of ``A`` alphabets (tensors, leading dim ``A``)."""

    stroke_probs: Tensor  # [A, 4] probabilities of 1..4 strokes
    primitives: Tensor  # [A, K, 4, 2] control-point displacements
    primitive_step: Tensor  # [A, K] step length of each primitive
    width: Tensor  # [A] stroke half-width in pixels at 28x28
    join_prob: Tensor  # [A]


@dataclass
class CharacterType:
    """Latents of ``C`` characters (leading dim ``C``), already centred and scaled."""

    num_strokes: Tensor  # [C] long in 1..4
    displacements: Tensor  # [C, S, 4, 2]
    free_start: Tensor  # [C, S, 2]
    joined: Tensor  # [C, S] bool (slot 0 is never joined)
    parent: Tensor  # [C, S] long, index of an earlier stroke
    parent_u: Tensor  # [C, S] position along the parent, in [0, 1]
    width: Tensor  # [C]

    @property
    def active(self) -> Tensor:
        """``[C, S]`` bool: which stroke slots are drawn."""
        slots = torch.arange(self.displacements.shape[-3], device=self.num_strokes.device)
        return slots < self.num_strokes[..., None]


def catmull_rom_basis(num_control: int = NUM_CONTROL, samples: int = SAMPLES_PER_SEGMENT) -> Tensor:
    """``[L, num_control]`` weights so that ``basis @ control_points`` is a dense curve.

    A uniform Catmull-Rom spline [3] through all control points (end tangents from
    reflected phantom points), ``samples`` points per segment plus the last point.
    """
    eye = torch.eye(num_control, dtype=torch.float64)
    pts = torch.cat([2 * eye[:1] - eye[1:2], eye, 2 * eye[-1:] - eye[-2:-1]])  # phantom ends
    t = torch.arange(samples, dtype=torch.float64) / samples
    rows = []
    for i in range(num_control - 1):
        p0, p1, p2, p3 = pts[i], pts[i + 1], pts[i + 2], pts[i + 3]
        a, b = 2 * p1, p2 - p0
        c, d = 2 * p0 - 5 * p1 + 4 * p2 - p3, -p0 + 3 * p1 - 3 * p2 + p3
        tt = t[:, None]
        rows.append(0.5 * (a + b * tt + c * tt**2 + d * tt**3))
    rows.append(eye[-1:])
    return torch.cat(rows).float()


def render_strokes(
    strokes: Tensor,
    image_size: int = 28,
    width: Tensor | float = 1.0,
    mask: Tensor | None = None,
    chunk: int = 256,
) -> Tensor:
    """Soft-rasterize densely sampled strokes; returns ink ``[..., H, W]`` in [0, 1].

    Args:
        strokes: ``[..., S, L, 2]`` points ``(x, y)`` in canvas units, ``[-1, 1]`` spanning
            the image (x to the right, y downwards).
        image_size: output side in pixels.
        width: stroke half-width in pixels *at 28x28* (scaled with ``image_size``); a float
            or a tensor broadcasting to ``strokes.shape[:-3]``.
        mask: optional ``[..., S]`` bool; strokes with ``False`` are not drawn.
        chunk: images rendered per block (bounds memory at ``chunk * H * W * S * L`` floats).

    Ink at a pixel centre at distance ``d`` (pixels) from the nearest point is
    ``clamp(w + 0.5 - d, 0, 1)``: full inside the half-width, a one-pixel linear edge.
    Computed as a separable squared distance and a min over points, no pixel loops.
    """
    if strokes.shape[-1] != 2 or strokes.dim() < 3:
        raise ValueError(f"strokes must be [..., S, L, 2], got {tuple(strokes.shape)}")
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    batch = strokes.shape[:-3]
    pts = (strokes + 1.0) * (0.5 * image_size)  # pixel units; centres at i + 0.5
    if mask is not None:
        pts = torch.where(mask[..., None, None], pts, torch.full_like(pts, 1e4))
    pts = pts.reshape(-1, pts.shape[-3] * pts.shape[-2], 2)
    w = torch.as_tensor(width, dtype=pts.dtype, device=pts.device) * (image_size / 28.0)
    w = w.expand(batch).reshape(-1, 1, 1)
    centres = torch.arange(image_size, dtype=pts.dtype, device=pts.device) + 0.5
    out = []
    for i in range(0, pts.shape[0], chunk):
        p = pts[i : i + chunk]
        dx2 = (centres[:, None] - p[:, None, :, 0]).square()  # [b, W, P]
        dy2 = (centres[:, None] - p[:, None, :, 1]).square()  # [b, H, P]
        d2 = (dy2[:, :, None, :] + dx2[:, None, :, :]).amin(-1)  # [b, H, W]
        out.append((w[i : i + chunk] + 0.5 - d2.sqrt()).clamp(0.0, 1.0))
    if not out:
        return pts.new_zeros((*batch, image_size, image_size))
    return torch.cat(out).reshape(*batch, image_size, image_size)


def assemble_strokes(
    displacements: Tensor,
    free_start: Tensor,
    joined: Tensor,
    parent: Tensor,
    parent_u: Tensor,
    basis: Tensor,
) -> Tensor:
    """Dense stroke curves ``[..., S, L, 2]`` from relative strokes and their relations.

    Slot ``s`` starts at ``free_start`` or, when ``joined``, at the point ``parent_u`` of
    the way along the (already assembled) curve of stroke ``parent < s``.
    """
    num_slots, num_pts = displacements.shape[-3], basis.shape[0]
    batch = displacements.shape[:-2]  # [..., S]
    joined, parent, parent_u = (v.expand(batch) for v in (joined, parent, parent_u))
    zero = displacements.new_zeros((*displacements.shape[:-2], 1, 2))
    offsets = torch.cat([zero, displacements.cumsum(-2)], -2)  # [..., S, P, 2]
    rel = basis @ offsets  # [..., S, L, 2]
    idx_along = (parent_u * (num_pts - 1)).round().long()
    curves: list[Tensor] = []
    for s in range(num_slots):
        start = free_start[..., s, :]
        if s > 0:
            done = torch.stack(curves, -3)  # [..., s, L, 2]
            j = parent[..., s].clamp(max=s - 1)
            flat = done.flatten(-3, -2)  # [..., s*L, 2]
            k = (j * num_pts + idx_along[..., s])[..., None, None].expand(*j.shape, 1, 2)
            attach = flat.gather(-2, k).squeeze(-2)
            start = torch.where(joined[..., s, None], attach, start)
        curves.append(start[..., None, :] + rel[..., s, :, :])
    return torch.stack(curves, -3)


def alphabet_prior(num_alphabets: int, num_primitives: int = 12) -> AlphabetStyle:
    """Sample ``num_alphabets`` alphabet styles (sites ``alphabet_*``); see the module story."""
    with pyro.plate("alphabets", num_alphabets, dim=-1):
        probs = pyro.sample(
            "alphabet_stroke_probs", dist.Dirichlet(torch.tensor([1.0, 3.0, 3.0, 2.0]))
        )
        curl = pyro.sample("alphabet_curvature", dist.LogNormal(math.log(0.5), 0.5))
        width = pyro.sample("alphabet_width", dist.LogNormal(0.0, 0.15))
        join = pyro.sample("alphabet_join_prob", dist.Beta(6.0, 2.0))
        with pyro.plate("primitives", num_primitives, dim=-2):
            heading = pyro.sample("primitive_heading", dist.Uniform(-math.pi, math.pi))
            turn = pyro.sample("primitive_turn", dist.Normal(0.0, curl))
            length = pyro.sample("primitive_length", dist.LogNormal(math.log(0.6), 0.25))
    steps = torch.arange(NUM_CONTROL - 1, dtype=heading.dtype) - 0.5 * (NUM_CONTROL - 2)
    angle = (heading + turn * steps[:, None, None]).permute(2, 1, 0)  # [A, K, 4]
    step = (length / (NUM_CONTROL - 1)).T  # [A, K]
    disp = step[..., None, None] * torch.stack([angle.cos(), angle.sin()], -1)
    return AlphabetStyle(probs, disp, step, width, join)


def character_model(
    style: AlphabetStyle, alphabet_of: Tensor, characters: pyro.plate | None = None
) -> CharacterType:
    """Sample one character type per entry of ``alphabet_of`` (sites ``character_*``).

    Strokes come from the alphabet's primitive library, bent a little per character,
    joined to earlier strokes with the alphabet's join probability; the result is
    centred and each axis scaled towards ``CANVAS_EXTENT`` (aspect change at most 2).
    ``characters`` is the plate to use (so :func:`token_model` can share it; Pyro allows
    one plate of a name per trace); by default a new ``"characters"`` plate.
    """
    num_chars, num_prims = alphabet_of.shape[0], style.primitives.shape[1]
    s_shape = (MAX_STROKES, num_chars)
    if characters is None:
        characters = pyro.plate("characters", num_chars, dim=-1)
    with characters:
        n = pyro.sample("character_num_strokes", dist.Categorical(style.stroke_probs[alphabet_of]))
        width = pyro.sample("character_width", dist.LogNormal(style.width[alphabet_of].log(), 0.1))
        with pyro.plate("strokes", MAX_STROKES, dim=-2):
            uniform = dist.Categorical(logits=torch.zeros(num_prims))
            prim = pyro.sample("character_primitive", uniform)
            scale = pyro.sample("character_stroke_scale", dist.LogNormal(0.0, 0.25))
            bend = pyro.sample(
                "character_bend",
                dist.Normal(0.0, 0.25).expand([*s_shape, NUM_CONTROL - 1, 2]).to_event(2),
            )
            joined = pyro.sample("character_joined", dist.Bernoulli(style.join_prob[alphabet_of]))
            r = pyro.sample("character_parent", dist.Uniform(0.0, 1.0))
            u = pyro.sample("character_parent_u", dist.Beta(0.4, 0.4))
            free = pyro.sample(
                "character_start", dist.Uniform(-0.4, 0.4).expand([*s_shape, 2]).to_event(1)
            )
    a = alphabet_of[None, :].expand(s_shape)
    d = style.primitives[a, prim] + bend * style.primitive_step[a, prim][..., None, None]
    d = (scale[..., None, None] * d).transpose(0, 1)  # [C, S, 4, 2]
    slots = torch.arange(MAX_STROKES, dtype=r.dtype)[:, None]
    parent = (r * slots).floor().long().T
    joined = (joined > 0.5).T & (torch.arange(MAX_STROKES) > 0)
    char = CharacterType(n + 1, d, free.transpose(0, 1), joined, parent, u.T.contiguous(), width)
    # centre the drawn strokes' bounding box and scale it towards CANVAS_EXTENT
    curves = assemble_strokes(
        char.displacements, char.free_start, joined, parent, char.parent_u, catmull_rom_basis()
    )
    act = char.active[..., None, None]
    lo = torch.where(act, curves, torch.inf).amin((-3, -2))  # [C, 2]
    hi = torch.where(act, curves, -torch.inf).amax((-3, -2))
    ext = (hi - lo).clamp(min=0.2)  # [C, 2]
    k = CANVAS_EXTENT / torch.maximum(ext, 0.5 * ext.amax(-1, keepdim=True))  # aspect <= 2
    char.free_start = k[:, None, :] * (char.free_start - (0.5 * (lo + hi))[:, None, :])
    char.displacements = k[:, None, None, :] * char.displacements
    return char


def token_model(
    char: CharacterType,
    num_tokens: int,
    image_size: int = 28,
    obs: Tensor | None = None,
    characters: pyro.plate | None = None,
) -> Tensor:
    """Draw ``num_tokens`` tokens per character; returns grey ink ``[T, C, H, W]``.

    Sites ``token_*`` (motor noise, affine jitter, width) and ``image``, a Bernoulli over
    pixels that ``obs`` (binary ``[T, C, H, W]``) can condition on. ``characters``: the
    plate shared with :func:`character_model` (a new one by default).
    """
    num_chars = char.num_strokes.shape[0]
    if characters is None:
        characters = pyro.plate("characters", num_chars, dim=-1)
    with characters, pyro.plate("tokens", num_tokens, dim=-2):
        d = pyro.sample("token_displacements", dist.Normal(char.displacements, 0.035).to_event(3))
        free = pyro.sample("token_start", dist.Normal(char.free_start, 0.035).to_event(2))
        scale = pyro.sample("token_scale", dist.LogNormal(0.0, 0.06).expand([num_chars]))
        rot = pyro.sample("token_rotation", dist.Normal(0.0, 0.08).expand([num_chars]))
        shear = pyro.sample("token_shear", dist.Normal(0.0, 0.08).expand([num_chars]))
        jitter = dist.Normal(0.0, 0.04).expand([num_chars, 2]).to_event(1)
        shift = pyro.sample("token_shift", jitter)
        width = pyro.sample("token_width", dist.LogNormal(char.width.log(), 0.08))
        curves = assemble_strokes(
            d, free, char.joined, char.parent, char.parent_u, catmull_rom_basis()
        )  # [T, C, S, L, 2]
        cos, sin = rot.cos(), rot.sin()
        mat = torch.stack([cos, -sin + shear * cos, sin, cos + shear * sin], -1)
        mat = scale[..., None, None] * mat.reshape(*rot.shape, 2, 2)
        curves = torch.einsum("tcij,tcslj->tcsli", mat, curves) + shift[:, :, None, None, :]
        ink = render_strokes(curves, image_size, width, mask=char.active.expand(curves.shape[:-2]))
        probs = ink.clamp(1e-4, 1 - 1e-4)
        pyro.sample("image", dist.Bernoulli(probs=probs).to_event(2), obs=obs)
    return ink


def glyph_program(
    alphabet_of: Tensor, num_alphabets: int, num_tokens: int, image_size: int = 28
) -> Tensor:
    """The whole program: alphabets, characters, tokens; returns ink ``[T, C, H, W]``."""
    style = alphabet_prior(num_alphabets)
    characters = pyro.plate("characters", alphabet_of.shape[0], dim=-1)
    char = character_model(style, alphabet_of, characters)
    return token_model(char, num_tokens, image_size, characters=characters)


def _check_positive(**kwargs: int) -> None:
    for name, value in kwargs.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def make_glyphs(
    num_characters: int = 200,
    tokens_per_character: int = 20,
    num_alphabets: int = 10,
    seed: int = 0,
    image_size: int = 28,
) -> ClassDataset:
    """The ``glyphs`` dataset: ``num_characters`` classes of ``tokens_per_character`` drawings.

    Character ``c`` belongs to alphabet ``c mod num_alphabets`` (round-robin) and is named
    ``glyphs/alphabetAA/characterCCC`` with 0-based indices (``CCC`` counts within the
    alphabet). Images are uint8 ``[N, M, 1, H, W]`` (anti-aliased grey, 255 = ink),
    ``binarization="fixed"``. The same ``seed`` gives bit-identical images; the caller's
    RNG state is left untouched (the program runs on a forked CPU generator, under
    :func:`pyro.poutine.block` so outer Pyro handlers see nothing).
    """
    _check_positive(
        num_characters=num_characters,
        tokens_per_character=tokens_per_character,
        num_alphabets=num_alphabets,
        image_size=image_size,
    )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    alphabet_of = torch.arange(num_characters) % num_alphabets
    with torch.random.fork_rng(devices=[]), poutine.block(), torch.no_grad():
        torch.default_generator.manual_seed(seed)
        ink = glyph_program(alphabet_of, num_alphabets, tokens_per_character, image_size)
    images = (ink.transpose(0, 1) * 255.0).round().to(torch.uint8).unsqueeze(2)
    wa, wc = max(2, len(str(num_alphabets - 1))), max(3, len(str(num_characters - 1)))
    alphabets = [f"glyphs/alphabet{a:0{wa}d}" for a in alphabet_of.tolist()]
    names = [f"{alphabets[c]}/character{c // num_alphabets:0{wc}d}" for c in range(num_characters)]
    logger.debug("generated glyphs: %d classes x %d tokens", num_characters, tokens_per_character)
    return ClassDataset(images, names, binarization="fixed", name="glyphs", alphabets=alphabets)
