"""A toy 3D training loop on patches medsegd samples (PatchLoader), with numpy only.

The "model" is a per-voxel logistic regression on the intensity (normalised with the dataset's
fingerprint, as nnU-Net normalises with its own), trained by gradient descent to tell labelled
voxels (any class) from background. A third of each batch's patches are centred on foreground.

    scripts/run &                                   # serves the demo on 127.0.0.1:8080
    python clients/python/examples/train_patches.py [--url http://127.0.0.1:8080]
"""
import argparse
import time

import numpy as np

from medsegd_client import Client, PatchLoader


def features(images, mean, std):
    """Per voxel: normalised intensity, its square and a bias, as rows of a matrix."""
    x = ((images.astype(np.float64) - mean) / std).reshape(-1)
    return np.stack([x, x * x, np.ones_like(x)], axis=1)


def loss_and_gradient(weights, x, y):
    """Binary cross-entropy of sigmoid(x @ weights) against y, and its gradient."""
    logits = x @ weights
    p = 1 / (1 + np.exp(-logits))
    loss = np.mean(np.logaddexp(0, logits) - y * logits)
    return loss, x.T @ (p - y) / len(y)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the medsegd server (default: %(default)s)")
    parser.add_argument("--dataset", default="demo_3d_test")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="batches per epoch")
    parser.add_argument("--lr", type=float, default=2.0)
    args = parser.parse_args()

    client = Client(args.url)
    fingerprint = client.fingerprint(args.dataset)  # waits while the server computes it
    mean, std = fingerprint["intensity"]["mean"], fingerprint["intensity"]["std"]
    print("%s: %d volumes, shapes %s..%s, intensity mean %.3f std %.3f, class voxels %s" % (
        args.dataset, fingerprint["volumes"], fingerprint["shapes"]["min"], fingerprint["shapes"]["max"], mean, std,
        fingerprint["class_voxels"]))
    loader = PatchLoader(client, args.dataset, patch_size=[32, 32, 8], batch_size=8, batches_per_epoch=args.steps,
                         seed=0, foreground_fraction=0.33, prefetch=2)
    weights = np.zeros(3)
    for epoch in range(args.epochs):
        started, losses, voxels = time.perf_counter(), [], 0
        for step, (images, masks) in enumerate(loader):  # a new set of patches every epoch
            if epoch == 0 and step == 0:
                print("batch:", images.shape, images.dtype, masks.shape, masks.dtype)
            x, y = features(images, mean, std), masks.any(axis=-1).reshape(-1).astype(np.float64)
            loss, gradient = loss_and_gradient(weights, x, y)
            weights -= args.lr * gradient
            losses.append(loss)
            voxels += y.size
        print("epoch %d: loss %.4f (first batch %.4f, last %.4f), %.0f patches/s" % (
            epoch, np.mean(losses), losses[0], losses[-1], len(losses) * loader.batch_size / (time.perf_counter() - started)))
    images, masks = loader[0]  # epoch 4's first batch, not trained on
    predicted = features(images, mean, std) @ weights > 0
    truth = masks.any(axis=-1).reshape(-1)
    dice = 2 * np.sum(predicted & truth) / max(1, predicted.sum() + truth.sum())
    print("held-out batch: accuracy %.3f, Dice %.3f" % (np.mean(predicted == truth), dice))


if __name__ == "__main__":
    main()
