"""The training pipeline over a dataset: segments as rows into one frame table, and ``tf.data``.

TensorFlow is imported only by :func:`tf_dataset`.
"""
from __future__ import annotations

import numpy as np


def segment_rows(lengths, seg_len, *, hop=None):
    """Row numbers ``[n, seg_len]`` (int32) into the items' frames stacked end to end, for every
    ``seg_len``-frame segment of every item, and the item each belongs to ``[n]``.

    Segments start every ``hop`` frames (default ``seg_len // 2``) and one more ends at the item's
    end; an item shorter than ``seg_len`` is padded by repeating its last frame. Rows, not copies:
    half-overlapping segments of a large set would hold every frame twice more.
    """
    hop = hop or seg_len // 2
    rows, owner, offset = [], [], 0
    for item, n in enumerate(lengths):
        starts = list(range(0, max(n - seg_len, 0) + 1, hop))
        if starts[-1] != max(n - seg_len, 0):
            starts.append(n - seg_len)
        for s in starts:
            rows.append(offset + np.minimum(s + np.arange(seg_len), n - 1))
            owner.append(item)
        offset += n
    return np.asarray(rows, np.int32).reshape(-1, seg_len), np.asarray(owner, np.int64)


def tf_dataset(inputs, *, batch_size, shuffle=True, seed=0, rows=None):
    """A cached, shuffled, batched, prefetched ``tf.data.Dataset`` over in-memory arrays.

    ``inputs`` is a dict of arrays, or a list of such dicts whose sequences differ in length (each
    is batched on its own; the batches of all of them are interleaved, at random if ``shuffle``).
    With ``rows`` (``(table, offset, scale)``: a float array ``[total, F]`` and the normalisation
    ``(x - offset) / scale`` of what is read from it), ``inputs["frames"]`` holds row numbers into
    ``table`` (:func:`segment_rows`), read batch by batch, so overlapping segments of a large set
    share one copy of its frames.
    """
    import tensorflow as tf

    parts = inputs if isinstance(inputs, list) else [inputs]
    batched = []
    for part in parts:
        ds = tf.data.Dataset.from_tensor_slices(part).cache()
        if shuffle:
            ds = ds.shuffle(len(next(iter(part.values()))), seed=seed, reshuffle_each_iteration=True)
        batched.append(ds.batch(batch_size))
    if len(batched) == 1:
        ds = batched[0]
    elif shuffle:
        counts = [-(-len(next(iter(part.values()))) // batch_size) for part in parts]
        ds = tf.data.Dataset.sample_from_datasets(batched, weights=[c / sum(counts) for c in counts], seed=seed,
                                                  stop_on_empty_dataset=False, rerandomize_each_iteration=True)
        ds = ds.apply(tf.data.experimental.assert_cardinality(sum(counts)))  # known: progress bars show it
    else:
        ds = batched[0]
        for more in batched[1:]:
            ds = ds.concatenate(more)
    if rows is not None:
        # a variable, not a constant: a dataset's graph may be serialised, and a constant over
        # 2 GB cannot be
        table, offset, scale = rows
        with tf.device("/cpu:0"):
            table = tf.Variable(table, trainable=False, dtype=tf.float32)
        offset, scale = tf.constant(offset, tf.float32), tf.constant(scale, tf.float32)
        ds = ds.map(lambda batch: {**batch, "frames": (tf.gather(table, batch["frames"]) - offset) / scale})
    return ds.prefetch(tf.data.AUTOTUNE)
