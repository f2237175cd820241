"""Recommendation: matrix factorisation with embeddings on implicit feedback, against a popularity baseline.

The data is generated with a known ground truth, so it is offline and its answer is known: every user and
item has hidden latent factors, every item a hidden popularity, and each user interacts with 10-40 items,
drawn without replacement with probability proportional to exp(user . item + popularity) (implicit
feedback: which items, no ratings). Per user, 20% of the interactions are held out for test and 10% for
validation.

The model is the classic matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008; Rendle et
al. 2009): ``nn.Embedding`` tables of user and item vectors plus an item bias, score = u . v + b_item,
trained with binary cross-entropy on the observed (user, item) pairs against items drawn at random as
negatives (4 per positive, fresh each epoch), Adam with weight decay. The popularity baseline scores every
item by its count of training interactions (the same list for every user), a strong baseline when
popularity drives interactions, as here.

Metrics on the held-out interactions, over items the user has not seen in training (and validation):
recall@10 (the fraction of a user's held-out items in their top 10, averaged over users) and AUC (the
probability that a held-out item scores above an item the user never interacted with, averaged over users).
The hidden logits themselves, scored the same way, give the ceiling (the draws are random, so it is < 1).

    python examples/recommender.py            # 30 epochs, a few seconds
    python examples/recommender.py --quick
"""
import argparse
import os
import tempfile
import time

import numpy as np

import pyengine as pe
import pyengine.nn as nn
import pyengine.nn.functional as F


def make_data(n_users=600, n_items=400, dim=8, seed=0):
    """Interactions from hidden factors: (train, val, test) lists of per-user item arrays, and the hidden
    (users, items) logits they were drawn from."""
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, dim)) / np.sqrt(dim) * 2.0
    items = rng.standard_normal((n_items, dim))
    popularity = rng.standard_normal(n_items)
    logits = users @ items.T + popularity                       # (users, items), the hidden preference
    gumbel = -np.log(-np.log(rng.random(logits.shape)))         # top-k of logits + Gumbel noise samples k
    order = np.argsort(-(logits + gumbel), axis=1)              # items without replacement, p ~ exp(logit)
    train, val, test = [], [], []
    for u in range(n_users):
        n = int(rng.integers(10, 41))
        chosen = rng.permutation(order[u, :n])
        n_test, n_val = max(1, round(0.2 * n)), max(1, round(0.1 * n))
        test.append(np.sort(chosen[:n_test]))
        val.append(np.sort(chosen[n_test:n_test + n_val]))
        train.append(np.sort(chosen[n_test + n_val:]))
    return train, val, test, logits


class MatrixFactorization(nn.Module):
    """score(u, i) = user[u] . item[i] + item_bias[i]."""

    def __init__(self, n_users, n_items, dim=32):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users, items):
        return (self.user(users) * self.item(items)).sum(dim=-1) + self.item_bias(items).squeeze(-1)

    def all_scores(self):
        """(users, items) scores as a NumPy array."""
        with pe.no_grad():
            return (self.user.weight @ self.item.weight.T + self.item_bias.weight.T).numpy()


def _seen_mask(n_items, *splits):
    """(users, items) bool: True where the user has an interaction in any of ``splits``."""
    seen = np.zeros((len(splits[0]), n_items), bool)
    for split in splits:
        for u, items in enumerate(split):
            seen[u, items] = True
    return seen


def rank_metrics(scores, held_out, exclude, k=10):
    """Mean recall@k and mean AUC over users of ``scores`` (users, items) for the ``held_out`` items of each
    user, ranking only the items not in ``exclude`` (users, items bool). AUC compares each held-out item
    with the items the user never interacted with (ties count one half)."""
    n_users, n_items = scores.shape
    recalls, aucs = [], []
    for u in range(n_users):
        pos = held_out[u]
        cand = ~exclude[u]
        s = np.where(cand, scores[u], -np.inf)
        top = np.argpartition(-s, k)[:k]
        recalls.append(np.isin(top, pos).sum() / len(pos))
        neg = cand.copy()
        neg[pos] = False
        sn = np.sort(scores[u, neg])
        sp = scores[u, pos]
        below = np.searchsorted(sn, sp, side="left")
        ties = np.searchsorted(sn, sp, side="right") - below
        aucs.append(float(np.mean((below + 0.5 * ties) / len(sn))))
    return float(np.mean(recalls)), float(np.mean(aucs))


def main(epochs=None, quick=False, seed=0, checkpoint=None, verbose=True, n_users=600, n_items=400):
    """Train matrix factorisation, keep the best epoch by validation recall@10, score it and the popularity
    baseline on the test interactions. Returns a dict of metrics."""
    epochs = epochs if epochs is not None else (10 if quick else 30)
    log = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    pe.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)

    train, val, test, truth = make_data(n_users, n_items, seed=seed)
    pairs_u = np.concatenate([np.full(len(items), u) for u, items in enumerate(train)]).astype(np.int64)
    pairs_i = np.concatenate(train).astype(np.int64)
    seen_train = _seen_mask(n_items, train)
    seen_all = _seen_mask(n_items, train, val, test)
    log(f"{n_users} users x {n_items} items: {len(pairs_i)} train / {sum(map(len, val))} val / "
        f"{sum(map(len, test))} test interactions")

    # popularity baseline: training counts, the same ranking for everyone
    counts = np.bincount(pairs_i, minlength=n_items).astype(np.float64)
    pop_scores = np.broadcast_to(counts, (n_users, n_items))
    exclude_test = _seen_mask(n_items, train, val)
    pop_recall, pop_auc = rank_metrics(pop_scores, test, exclude_test)
    oracle_recall, oracle_auc = rank_metrics(truth, test, exclude_test)   # the hidden logits: the ceiling

    model = MatrixFactorization(n_users, n_items)
    optimizer = pe.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-5)
    negatives, batch = 4, 1024

    tmp = None
    if checkpoint is None:
        tmp = tempfile.TemporaryDirectory()
        checkpoint = os.path.join(tmp.name, "recommender_best.safetensors")
    best_recall, best_epoch = -1.0, 0
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            # positives plus `negatives` random items per positive that the user never interacted with
            neg_u = np.repeat(pairs_u, negatives)
            neg_i = rng.integers(0, n_items, len(neg_u))
            keep = ~seen_all[neg_u, neg_i]
            users = np.concatenate([pairs_u, neg_u[keep]])
            items = np.concatenate([pairs_i, neg_i[keep]])
            labels = np.concatenate([np.ones(len(pairs_u)), np.zeros(int(keep.sum()))]).astype(np.float32)
            perm = rng.permutation(len(users))
            running = 0.0
            for s in range(0, len(perm), batch):
                idx = perm[s:s + batch]
                logits = model(pe.from_numpy(users[idx]), pe.from_numpy(items[idx]))
                loss = F.binary_cross_entropy_with_logits(logits, pe.from_numpy(labels[idx]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                running += loss.item() * len(idx)
            model.eval()
            val_recall, val_auc = rank_metrics(model.all_scores(), val, seen_train)
            if val_recall > best_recall:
                best_recall, best_epoch = val_recall, epoch
                pe.save({"model": model.state_dict(), "epoch": epoch, "val_recall": val_recall}, checkpoint)
            log(f"epoch {epoch:3d}  train loss {running / len(perm):.4f}  val recall@10 {val_recall:.4f}  "
                f"val AUC {val_auc:.4f}{'  *' if best_epoch == epoch else ''}")
        model.load_state_dict(pe.load(checkpoint)["model"])
    finally:
        if tmp is not None:
            tmp.cleanup()

    recall, auc = rank_metrics(model.all_scores(), test, exclude_test)
    seconds = time.perf_counter() - t0
    log(f"best epoch {best_epoch}; test recall@10 {recall:.4f}  AUC {auc:.4f}  |  popularity baseline: "
        f"recall@10 {pop_recall:.4f}  AUC {pop_auc:.4f}  |  the hidden truth: recall@10 {oracle_recall:.4f}  "
        f"AUC {oracle_auc:.4f}  ({seconds:.1f} s)")
    return {"test_recall_at_10": recall, "test_auc": auc, "popularity_recall_at_10": pop_recall,
            "popularity_auc": pop_auc, "oracle_recall_at_10": oracle_recall, "oracle_auc": oracle_auc,
            "best_epoch": best_epoch, "epochs": epochs, "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs to train (default 30, 10 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a short run (for tests and smoke checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="where to keep the best checkpoint (default: a temp file)")
    args = parser.parse_args()
    main(epochs=args.epochs, quick=args.quick, seed=args.seed, checkpoint=args.checkpoint)
