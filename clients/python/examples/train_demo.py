"""A toy training loop over the demo dataset through medsegd: batches, shapes, items/s.

    scripts/run &                                   # serves the demo on 127.0.0.1:8080
    python clients/python/examples/train_demo.py [--url http://127.0.0.1:8080]
"""
import argparse
import time

import numpy as np

from medsegd_client import BatchLoader, Client


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the medsegd server (default: %(default)s)")
    parser.add_argument("--dataset", default="demo_2d_train")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    client = Client(args.url)
    meta = client.metadata(args.dataset)
    print("classes:", meta["categories"], "ids:", meta["category_ids"])
    loader = BatchLoader(client, args.dataset, batch_size=8, shuffle=True, seed=0, prefetch=2, background="first")
    weights = np.zeros(len(meta["categories"]) + 1)  # a stand-in "model": per-class pixel frequencies
    for epoch in range(args.epochs):
        started, items = time.perf_counter(), 0
        for step, (images, masks) in enumerate(loader):  # one epoch; the next one is reshuffled
            weights += 0.01 * (masks.reshape(-1, masks.shape[-1]).mean(axis=0) - weights)
            items += len(images)
            if epoch == 0 and step == 0:
                print("batch:", images.shape, images.dtype, masks.shape, masks.dtype)
        print("epoch %d: %d items, %.0f items/s" % (epoch, items, items / (time.perf_counter() - started)))
    print("class frequencies (background first):", np.round(weights, 3))


if __name__ == "__main__":
    main()
