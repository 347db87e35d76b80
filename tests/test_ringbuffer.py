import threading

import numpy as np

from live_mer.ringbuffer import RingBuffer


def test_wraparound_preserves_order():
    ring = RingBuffer(10, 2)
    out = []
    counter = 0
    for size in (3, 4, 5, 2, 6, 1, 7):
        block = np.arange(counter, counter + size, dtype=np.float32)[:, None].repeat(2, axis=1)
        counter += size
        assert ring.write(block)
        out.append(ring.read())
    got = np.concatenate(out)
    np.testing.assert_array_equal(got[:, 0], np.arange(counter))
    np.testing.assert_array_equal(got[:, 1], np.arange(counter))
    assert ring.overflows == 0


def test_overflow_drops_incoming_block_and_counts():
    ring = RingBuffer(8, 1)
    assert ring.write(np.ones((6, 1), np.float32))
    assert not ring.write(np.full((3, 1), 2.0, np.float32))  # does not fit: dropped whole
    assert ring.overflows == 1 and ring.dropped_frames == 3
    np.testing.assert_array_equal(ring.read()[:, 0], np.ones(6))
    assert ring.write(np.full((8, 1), 3.0, np.float32))  # fits again after the read


def test_discard_to_latest_keeps_newest():
    ring = RingBuffer(16, 1)
    ring.write(np.arange(12, dtype=np.float32)[:, None])
    assert ring.discard_to_latest(4) == 8
    np.testing.assert_array_equal(ring.read()[:, 0], [8, 9, 10, 11])
    assert ring.discard_to_latest(4) == 0


def test_concurrent_producer_consumer_loses_nothing_or_counts_it():
    ring = RingBuffer(4096, 1)
    total = 400_000
    received = []
    rejected = [0]

    def produce():
        i = 0
        while i < total:
            n = min(257, total - i)
            block = np.arange(i, i + n, dtype=np.float32)[:, None]
            while not ring.write(block):  # a file source waits; every refused write is counted
                rejected[0] += 1
            i += n

    t = threading.Thread(target=produce)
    t.start()
    scratch = np.empty((4096, 1), np.float32)
    got = 0
    while got < total:
        block = ring.read(scratch)
        if block.shape[0]:
            received.append(block[:, 0].copy())
            got += block.shape[0]
    t.join()
    data = np.concatenate(received)
    np.testing.assert_array_equal(data, np.arange(total, dtype=np.float32))
    assert ring.overflows == rejected[0]
