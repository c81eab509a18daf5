"""Figure helpers for the lessons, so that the notebooks show the picture and not the boilerplate."""
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np

from tinyresnet.autograd import topological_order

# The label order of the official CIFAR-10 files (batches.meta).
from tinyresnet.data import CLASSES as CIFAR10_CLASSES  # noqa: F401 (re-exported for the lessons)


def to_rgb(images):
    """(…, 3, H, W) channels-first -> (…, H, W, 3) as imshow wants it; floats are clipped to [0, 1]."""
    images = np.moveaxis(np.asarray(images), -3, -1)
    return images if images.dtype == np.uint8 else np.clip(images, 0, 1)


def image_grid(images, titles=None, ncols=8, size=1.3, title=None):
    """Show images (N, 3, H, W) in a grid with an optional caption under each."""
    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.25)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(to_rgb(images[k]), interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=8, pad=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_matrix(ax, matrix, row_labels=None, col_labels=None, fmt="{:.0f}", cmap="viridis",
                vmin=None, vmax=None):
    """imshow of a small matrix with each entry written in its cell."""
    matrix = np.asarray(matrix)
    vmin = np.nanmin(matrix) if vmin is None else vmin
    vmax = np.nanmax(matrix) if vmax is None else vmax
    image = ax.imshow(matrix, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    for (i, j), v in np.ndenumerate(matrix):
        r, g, b, _ = image.cmap(image.norm(v))
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5     # white text on dark cells
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8,
                color="white" if dark else "black")
    for spine in ax.spines.values():
        spine.set_visible(False)
    for labels, ticks, set_labels in ((row_labels, ax.set_yticks, ax.set_yticklabels),
                                      (col_labels, ax.set_xticks, ax.set_xticklabels)):
        if labels is not None:
            ticks(range(len(labels)))
            set_labels(labels, fontsize=8)


class Graph:
    """A snapshot of the graph behind `root`, taken before backward() frees it.

    names: {tensor: label}, e.g. {x: "x", a: "a = x·y"}; unnamed nodes show their op.
    Draw it before backward() for the values, and after for the gradients too.
    """

    def __init__(self, root, names):
        self.nodes = topological_order(root)
        self.edges = [(p, node) for node in self.nodes for p in node.parents]
        self.labels = {id(t): label for t, label in names.items()}
        depth = {}
        for node in self.nodes:  # parents come first, so their depth is known
            depth[id(node)] = 1 + max((depth[id(p)] for p in node.parents), default=-1)
        self.depth = depth

    def order(self):
        """The labels in topological order: every node after all of its inputs."""
        return [self.labels.get(id(n), n.op) for n in self.nodes]

    def draw(self, show_grad=False, title=None, ax=None):
        ax = ax or plt.subplots(figsize=(7, 2.6))[1]
        columns = {}
        for node in self.nodes:
            columns.setdefault(self.depth[id(node)], []).append(node)
        pos = {id(n): (d, (len(col) - 1) / 2 - k) for d, col in columns.items() for k, n in enumerate(col)}
        copies = Counter((id(p), id(c)) for p, c in self.edges)
        drawn = Counter()
        for parent, child in self.edges:
            key = (id(parent), id(child))
            # an input used twice by one op gets two arcs; an edge that skips a level bends around
            if copies[key] > 1:
                rad = 0.5 * (drawn[key] - (copies[key] - 1) / 2)
            else:
                rad = -0.3 if self.depth[id(child)] - self.depth[id(parent)] > 1 else 0.0
            drawn[key] += 1
            ax.annotate("", xy=pos[id(child)], xytext=pos[id(parent)],
                        arrowprops=dict(arrowstyle="->", color="gray", shrinkA=28, shrinkB=28,
                                        connectionstyle=f"arc3,rad={rad}"))
        for node in self.nodes:
            text = f"{self.labels.get(id(node), node.op)}\nvalue {_short(node.data)}"
            if show_grad:
                text += f"\ngrad {_short(node.grad)}"
            leaf = node.is_leaf
            ax.text(*pos[id(node)], text, ha="center", va="center", fontsize=9,
                    bbox=dict(boxstyle="round", fc="#e8f0fe" if leaf else "#fff4e0", ec="gray"))
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
        ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
        ax.axis("off")
        if title:
            ax.set_title(title)
        return ax


def _short(v):
    if v is None:
        return "—"
    v = np.asarray(v)
    return f"{float(v):.4g}" if v.size == 1 else f"shape {v.shape}"
