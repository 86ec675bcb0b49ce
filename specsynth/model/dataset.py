"""The training pipeline over a dataset: segments of a dataset read from disk batch by batch
(:func:`segment_dataset`), and ``tf.data`` over in-memory arrays such as the prior's windows
(:func:`tf_dataset`).

TensorFlow is imported only inside :func:`segment_dataset` and :func:`tf_dataset`.
"""
from __future__ import annotations

import numpy as np


def segment_starts(lengths, seg_len, *, hop=None):
    """Where every ``seg_len``-frame segment of every item starts: ``(owner, start, valid)``, int64
    ``[n]`` each: the item (position in ``lengths``), the first frame within it, and how many of
    the segment's frames lie inside the item (``seg_len``, or the item's length if shorter; the
    rest is padding by its last frame).

    Segments start every ``hop`` frames (default ``seg_len // 2``) and one more ends at the item's
    end. The one rule :func:`segment_dataset` and the trainer's step count cut by.
    """
    hop = hop or seg_len // 2
    owner, start, valid = [], [], []
    for item, n in enumerate(lengths):
        n = int(n)
        starts = list(range(0, max(n - seg_len, 0) + 1, hop))
        if starts[-1] != max(n - seg_len, 0):
            starts.append(n - seg_len)
        owner.extend([item] * len(starts))
        start.extend(starts)
        valid.extend([min(n, seg_len)] * len(starts))
    return (np.asarray(owner, np.int64), np.asarray(start, np.int64), np.asarray(valid, np.int64))


def read_segments(data, starts, valid, seg_len):
    """Frames ``[B, seg_len, F]`` and contours ``[B, seg_len, 2]`` (float32) of the segments that
    start at rows ``starts`` of ``data`` (a :class:`specsynth.data.Dataset`) with ``valid`` frames
    each, a short one padded by repeating its last frame: one contiguous read per segment."""
    frames = np.empty((len(starts), seg_len, data.n_features), np.float32)
    contour = np.empty((len(starts), seg_len, 2), np.float32)
    for b, (s, v) in enumerate(zip(np.asarray(starts).tolist(), np.asarray(valid).tolist())):
        frames[b, :v] = data.read_rows(s, v)
        frames[b, v:] = frames[b, v - 1]
        contour[b, :v] = data.contour[s : s + v]
        contour[b, v:] = contour[b, v - 1]
    return frames, contour


def segment_dataset(data, indices, *, seg_len, batch_size, offset, scale, shuffle=True, seed=0, gain_db=None,
                    parallel_reads=4):
    """A ``tf.data.Dataset`` of every ``seg_len``-frame segment of the items ``indices`` of ``data``
    (a :class:`specsynth.data.Dataset`), cut as :func:`segment_starts` cuts, read from disk batch by
    batch so memory stays bounded whatever the dataset's size.

    Each element is a dict: ``"frames"`` float32 ``[B, seg_len, F]``, normalised
    ``(dB - offset) / scale``, and ``"contour"`` float32 ``[B, seg_len, 2]`` (f0 in fractional MIDI,
    voicing 0..1); the last batch may be smaller. ``shuffle`` reshuffles the segments every epoch;
    the order (and the gains) depend only on ``seed``. ``gain_db=(lo, hi)`` adds to each segment's
    dB frames a gain drawn uniformly from ``lo..hi`` dB (fresh every epoch) before normalising, then
    clips them below at ``data.config.db_floor``: level augmentation, so the model keeps the level
    it is given. None (validation): no gain. ``parallel_reads`` batches are read at once, and two
    are kept ready: at most ``parallel_reads + 2`` batches are in memory.
    """
    import tensorflow as tf

    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("segment_dataset needs at least one item")
    items = [data.items[i] for i in indices]
    owner, start, valid = segment_starts([item["frames"] for item in items], seg_len)
    starts = np.asarray([item["offset"] for item in items], np.int64)[owner] + start
    n = len(starts)
    ds = tf.data.Dataset.from_tensor_slices({"start": starts, "valid": valid})
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if gain_db is not None:
        lo, hi = (float(g) for g in gain_db)
        if not lo <= hi:
            raise ValueError(f"gain_db must be (lo, hi) with lo <= hi, got {gain_db!r}")
        # one random int per segment, a new stream each epoch, the same streams for one seed
        noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, noise).map(lambda seg, r: {**seg, "gain": lo + (hi - lo) * tf.cast(
            r % (1 << 24), tf.float32) / float(1 << 24)})
    ds = ds.batch(batch_size)
    floor = float(data.config.db_floor)
    offset, scale = float(offset), float(scale)

    def read(batch):
        frames, contour = tf.numpy_function(lambda s, v: read_segments(data, s, v, seg_len),
                                            [batch["start"], batch["valid"]], [tf.float32, tf.float32],
                                            stateful=False)
        frames.set_shape([None, seg_len, data.n_features])
        contour.set_shape([None, seg_len, 2])
        if "gain" in batch:
            frames = tf.maximum(frames + batch["gain"][:, None, None], floor)
        return {"frames": (frames - offset) / scale, "contour": contour}

    ds = ds.map(read, num_parallel_calls=parallel_reads, deterministic=True)
    return ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size))).prefetch(2)


def tf_dataset(inputs, *, batch_size, shuffle=True, seed=0):
    """A cached, shuffled, batched, prefetched ``tf.data.Dataset`` over in-memory arrays (the
    prior's windows of latents, small beside the frames).

    ``inputs`` is a dict of arrays, or a list of such dicts whose sequences differ in length (each
    is batched on its own; the batches of all of them are interleaved, at random if ``shuffle``).
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
    return ds.prefetch(tf.data.AUTOTUNE)
