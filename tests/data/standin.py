"""Tiny synthetic image data sets saved in a Hugging Face Hub repository's layout.

``datasets.load_dataset(folder)`` (and so flwr-datasets' ``FederatedDataset``)
reads such a folder as it reads the Hub repository: a README whose ``configs``
block maps each split to ``<config>/<split>-00000-of-00001.parquet``, and parquet
files that carry the ``Image`` and ``ClassLabel`` features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

README = """---
configs:
- config_name: {config}
  data_files:
{files}
  default: true
---
"""


def pixel(label: int, channel: int) -> int:
    """Value of a stand-in image of class ``label`` in ``channel`` at even ``h + w``."""
    return 25 * label + 5 * channel


def write_image_standin(
    root: Path,
    *,
    config: str,
    image_column: str,
    channels: int,
    size: int,
    counts: dict[str, int],
    seed: int = 0,
) -> Path:
    """Write ``counts[split]`` random-label images per split to ``root``; return ``root``.

    Pixel ``(h, w, c)`` of a class-``y`` image is ``pixel(y, c) + (h + w) % 2``,
    so a reader's channel order and label alignment can be checked.
    """
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    features = datasets.Features(
        {
            image_column: datasets.Image(),
            "label": datasets.ClassLabel(names=[f"class{k}" for k in range(10)]),
        }
    )
    ripple = (np.add.outer(np.arange(size), np.arange(size)) % 2).astype(np.uint8)
    files = []
    for split, count in counts.items():
        labels = rng.integers(0, 10, count)
        images = []
        for label in labels:
            planes = [pixel(int(label), c) + ripple for c in range(channels)]
            array = np.stack(planes, axis=-1) if channels > 1 else planes[0]
            images.append(Image.fromarray(array.astype(np.uint8)))
        rows = {image_column: images, "label": labels.tolist()}
        target = root / config / f"{split}-00000-of-00001.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(rows, features=features).to_parquet(target)
        files.append(f"  - split: {split}\n    path: {config}/{split}-*")
    (root / "README.md").write_text(README.format(config=config, files="\n".join(files)))
    return root


def isolated_hub(monkeypatch, cache: Path) -> None:
    """Keep ``datasets`` offline and its cache in ``cache`` for the test."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
