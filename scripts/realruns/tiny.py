"""The tiny model, data and truth-file helpers shared by the real-run generators in this folder.

Every real run is an actual CPU training of a small character-level causal transformer on a
deterministic pseudo-English text: nothing in a log is edited or injected after the fact. Torch is
needed here (generators only: the core and its tests never import it).
"""

from __future__ import annotations

import json
import math
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

WORDS = ("the a of to and in is it that was for on are with as his they be at one have this from or had by "
         "word but what some we can out other were all there when up use your how said an each she which do "
         "their time if will way about many then them write would like so these her long make thing see him "
         "two has look more day could go come did number sound no most people my over know water than call "
         "first who may down side been now find any new work part take get place made live where after back "
         "little only round man year came show every good me give our under name very through just form").split()

VOCAB = "abcdefghijklmnopqrstuvwxyz .,\n"
STOI = {c: i for i, c in enumerate(VOCAB)}


def corpus(n_chars: int = 200_000, seed: int = 0) -> np.ndarray:
    """A deterministic pseudo-English text as int64 token ids (Zipf-ish word choice, sentences)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1) ** 0.9
    weights /= weights.sum()
    out: list[str] = []
    size = 0
    while size < n_chars:
        k = int(rng.integers(4, 12))
        words = [WORDS[i] for i in rng.choice(len(WORDS), size=k, p=weights)]
        sentence = " ".join(words) + (". " if rng.random() < 0.85 else ",\n")
        out.append(sentence)
        size += len(sentence)
    text = "".join(out)[:n_chars]
    return np.fromiter((STOI[c] for c in text), dtype=np.int64, count=len(text))


class TinyLM(nn.Module):
    """A 2-layer causal transformer; ``forward`` returns ``{"loss", "logits"}`` as HF Trainer expects."""

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4, ctx: int = 32, vocab: int = len(VOCAB)):
        super().__init__()
        self.ctx = ctx
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(ctx, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        self.mask: torch.Tensor
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(ctx), persistent=False)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **_: Any) -> dict[str, Any]:
        t = input_ids.shape[1]
        h = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        logits = self.head(self.norm(h))
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        return out


def batches(data: np.ndarray, batch: int = 16, ctx: int = 32, seed: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
    """An endless stream of random (input, target) windows, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    while True:
        ix = rng.integers(0, data.shape[0] - ctx - 1, size=batch)
        x = np.stack([data[i : i + ctx] for i in ix])
        y = np.stack([data[i + 1 : i + 1 + ctx] for i in ix])
        yield torch.from_numpy(x), torch.from_numpy(y)


class WindowDataset(torch.utils.data.Dataset):
    """Fixed windows of the corpus for HF Trainer / Lightning (``input_ids`` and ``labels``)."""

    def __init__(self, data: np.ndarray, n: int, ctx: int = 32, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.data, self.ctx = data, ctx
        self.starts = rng.integers(0, data.shape[0] - ctx - 1, size=n)

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = int(self.starts[i])
        return {"input_ids": torch.from_numpy(self.data[s : s + self.ctx].copy()),
                "labels": torch.from_numpy(self.data[s + 1 : s + 1 + self.ctx].copy())}


def seed_all(seed: int) -> None:
    """Make a run reproducible on one machine (torch CPU kernels, numpy)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(1)


def versions(*modules: str) -> dict[str, str]:
    """Versions of Python and the named packages, for truth.json."""
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for m in modules:
        out[m] = version(m)
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return _jsonable(x.item())
    return x


def write_truth(run_dir: Path, truth: dict[str, Any]) -> None:
    """``truth.json`` with non-finite numbers as the strings "nan"/"inf" (as the shared corpus writes them)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "truth.json").write_text(json.dumps(_jsonable(truth), indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":  # a smoke run: the model trains
    seed_all(0)
    data = corpus(50_000)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step, (x, y) in zip(range(60), batches(data), strict=False):
        loss = model(x, y)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            print(step, float(loss.detach()), file=sys.stderr)
