"""A fixed random non-linear "visual encoder": text embedding -> visual prototype.

It plays the role of the unknown map between CLIP's text and video feature spaces: smooth (so
classes with similar names get similar prototypes, which is what makes zero-shot transfer
possible) but non-linear and of a different dimension, so a detector has to learn it from the
seen classes.

    x̃ = (x - μ) / s                               (optional centring, see below)
    h = tanh(g · W1 x̃ + b1)       W1 ~ N(0, 1), b1 ~ N(0, bias_std²)      (H, E)
    kind "mlp":      p = normalise(W2 h)                 W2 ~ N(0, 1/H)   (D, H)
    kind "aligned":  p = normalise(R x̃ + γ · W2 h + g·u) W2 ~ N(0, 1/H)   (E, H), needs D = E
    kind "linear":   p = normalise(A x̃ + γ · W2 h)       A ~ N(0, 1/E)    (D, E)

``aligned`` mimics CLIP, whose image and text embeddings share one space: the visual prototype is
the (centred) text embedding itself, bent by a fixed random non-linear perturbation of relative
size γ (``perturbation``). ``mlp`` maps to an unrelated space, which a detector must learn from the
seen classes alone — with near-orthogonal class embeddings that does not transfer to unseen ones.
``linear`` maps to an unrelated space of any dimension through a fixed random linear map plus the
same non-linear perturbation: features not aligned with text (as from a video encoder trained
without language), yet the class geometry is kept, so the name information is recoverable in
principle (a linear probe fitted on seen classes transfers). For ``aligned``, ``rotation`` (radians)
turns the prototypes by a fixed random rotation ``R = exp(rotation * S)`` (``S`` a random
skew-symmetric matrix of unit spectral norm) and ``gap`` adds a constant unit vector ``u`` times
``gap`` -- CLIP's modality gap: image and text embeddings share a space up to a rotation-like
misalignment and a constant offset. ``aligned_base: raw`` rotates the raw unit text code instead of
the centred one, keeping the large component all names share: raw cosines between features and
class prompts then behave as CLIP's do (matching class highest, every class well above zero),
which is what a training-free detector reads.

``μ`` is the mean embedding of the layout's whole class list and ``s`` the RMS norm of the centred
embeddings (legacy), or both come from a ``reference`` set of embeddings that names no class
(:mod:`stale.synth.codes`), so that no unseen-class information enters the normalisation.
Random text towers (and real CLIP) give embeddings with a large shared component; without
centring all prototypes would nearly coincide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stale.core.errors import StaleError


@dataclass
class VisualEncoderConfig:
    """Knobs of the random visual encoder (defaults documented in docs/synth.md)."""

    hidden_dim: int = 512  # H
    gain: float = 1.5  # g: pre-activation std for a unit-norm input; 1.5 makes tanh clearly non-linear
    bias_std: float = 0.5
    center_text: bool = True
    kind: str = "mlp"  # "mlp" (unrelated space), "aligned" (CLIP-like shared space, D = E), "linear"
    perturbation: float = 0.5  # γ of the aligned / linear kinds
    rotation: float = 0.0  # aligned: angle scale of the fixed random rotation R (radians)
    gap: float = 0.0  # aligned: norm of the constant modality-gap offset
    aligned_base: str = "centred"  # aligned: rotate the centred code x̃ (legacy) or the raw unit code


class RandomVisualEncoder:
    """Seeded random 2-layer MLP mapping (N, E) text embeddings to (N, D) unit visual vectors."""

    def __init__(self, class_embeddings: np.ndarray, dim: int, rng: np.random.Generator,
                 cfg: VisualEncoderConfig | None = None, reference: np.ndarray | None = None):
        cfg = cfg or VisualEncoderConfig()
        emb = np.asarray(class_embeddings, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] < 2 or not np.isfinite(emb).all():
            raise StaleError(f"class embeddings must be a finite (K>=2, E) array, got shape {emb.shape}")
        self.cfg = cfg
        self.text_dim = emb.shape[1]
        self.dim = int(dim)
        ref = emb if reference is None else np.asarray(reference, dtype=np.float64)
        if ref.ndim != 2 or ref.shape[1] != emb.shape[1] or len(ref) < 2:
            raise StaleError(f"reference embeddings must be a (V>=2, {emb.shape[1]}) array, got shape {ref.shape}")
        if cfg.center_text:
            self.mu = ref.mean(axis=0)
            centred = ref - self.mu
            self.scale = float(np.sqrt((centred ** 2).sum(axis=1).mean()))
            if not self.scale > 1e-12:
                raise StaleError("class embeddings are all identical; cannot derive class prototypes")
        else:
            self.mu = np.zeros(self.text_dim)
            self.scale = float(np.sqrt((ref ** 2).sum(axis=1).mean()))
        if cfg.aligned_base not in ("centred", "raw"):
            raise StaleError(f"synth encoder.aligned_base must be 'centred' or 'raw', got {cfg.aligned_base!r}")
        if cfg.kind not in ("mlp", "aligned", "linear"):
            raise StaleError(f"synth encoder.kind must be 'mlp', 'aligned' or 'linear', got {cfg.kind!r}")
        if cfg.kind == "aligned" and self.dim != self.text_dim:
            raise StaleError(f"synth encoder.kind 'aligned' puts features in the text space: dim must "
                             f"equal the text embedding size {self.text_dim}, got {self.dim}")
        self.w1 = rng.standard_normal((cfg.hidden_dim, self.text_dim)) * cfg.gain
        self.b1 = rng.standard_normal(cfg.hidden_dim) * cfg.bias_std
        self.w2 = rng.standard_normal((self.dim, cfg.hidden_dim)) / np.sqrt(cfg.hidden_dim)
        # drawn after the original parameters, so existing kinds keep their exact weights
        self.rot = None
        self.offset = None
        self.lin = None
        if cfg.kind == "aligned" and cfg.rotation:
            import torch

            a = rng.standard_normal((self.dim, self.dim))
            skew = (a - a.T) / 2
            skew /= np.linalg.norm(skew, 2)
            self.rot = torch.linalg.matrix_exp(torch.from_numpy(cfg.rotation * skew)).numpy()
        if cfg.kind == "aligned" and cfg.gap:
            u = rng.standard_normal(self.dim)
            self.offset = cfg.gap * u / np.linalg.norm(u)
        if cfg.kind == "linear":
            self.lin = rng.standard_normal((self.dim, self.text_dim)) / np.sqrt(self.text_dim)

    def normalised_text(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, E) -> (N, E) the encoder's input x̃ (centred and scaled to unit RMS norm)."""
        return (np.asarray(embeddings, dtype=np.float64) - self.mu) / self.scale

    def random_text(self, n: int, rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
        """(n, E) random embeddings with the class set's statistics (pseudo-classes, background);
        ``spread`` scales their distance from the mean (scenes further from everything named)."""
        z = rng.standard_normal((n, self.text_dim))
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        return self.mu + spread * self.scale * z

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, E) text embeddings -> (N, D) L2-normalised visual prototypes (float64)."""
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[1] != self.text_dim:
            raise StaleError(f"expected (N, {self.text_dim}) text embeddings, got shape {emb.shape}")
        x = self.normalised_text(emb)
        h = np.tanh(x @ self.w1.T + self.b1)
        p = h @ self.w2.T
        if self.cfg.kind == "aligned":
            if self.cfg.aligned_base == "raw":
                # γ is then the perturbation's size relative to the unit code
                base = emb / np.linalg.norm(emb, axis=1, keepdims=True)
                p = p / np.linalg.norm(p, axis=1, keepdims=True)
            else:
                base = x
            base = base @ self.rot.T if self.rot is not None else base
            p = base + self.cfg.perturbation * p
            if self.offset is not None:
                p = p + self.offset
        elif self.cfg.kind == "linear":
            p = x @ self.lin.T + self.cfg.perturbation * p
        return p / np.linalg.norm(p, axis=1, keepdims=True)
