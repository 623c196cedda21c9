#!/usr/bin/env python3
"""Writes the hand-made sched_ops regression inputs into regressions/sched_ops/.

The bytes follow how `arbitrary` 1.x decodes the target's `Input`: an enum variant is a
little-endian u32 `x` read as variant `(x * variants) >> 32`; an `Option` or `bool` is one byte
(low bit); integers are little-endian; every element of a `Vec` is preceded by a byte whose low
bit says whether another element follows. The layouts below mirror the `Arbitrary` types in
fuzz_targets/sched_ops.rs: change those types and these helpers must change with them (check an
input with `cargo fuzz fmt sched_ops FILE`).

    python3 regressions/make_sched_ops.py
"""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sched_ops")


def variant(index, count):
    x = -(-(index << 32) // count)  # the smallest x that decodes to `index`
    assert (x * count) >> 32 == index
    return struct.pack("<I", x)


def u8(v):
    return bytes([v])


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


NONE, SOME, STOP, MORE = u8(0), u8(1), u8(0), u8(1)
OPS = 17  # variants of `Op`


def vec(items):
    return b"".join(MORE + item for item in items) + STOP


def take_rest(items):  # the last field: no final STOP needed, the input just ends
    return b"".join(MORE + item for item in items)


def option(payload):
    return NONE if payload is None else SOME + payload


# Span: Millis(u32) | Secs(u64) | Max
def span_ms(ms):
    return variant(0, 3) + u32(ms)


SPAN_MAX = variant(2, 3)


def config(algorithm, persistence=None, slow_start=None, locality=None, incremental=False):
    """`algorithm` indexes Algorithm::NAMES (6 lblc, 7 lblcr, 11 fo, 0 rr)."""
    return (
        u8(algorithm)
        + vec([])  # flags
        + NONE  # table_size
        + NONE  # choices
        + NONE  # points
        + option(persistence)
        + option(slow_start)
        + NONE  # bounded_load
        + option(locality)
        + u8(int(incremental))
    )


def persistence(timeout):
    return timeout + NONE + NONE + NONE + u8(0)  # masks unset, expire_quiescent false


def slow_start(window):
    return window + NONE + NONE  # default aggression and minimum


def locality(expiration, max_entries, entry_timeout):
    return expiration + u8(max_entries) + entry_timeout


RNG = variant(0, 3) + u64(12345)  # XorShift(12345)


def backend(weight, thresholds=None):
    """Sequential id, Weight::Small(weight), no address, Up, optional Limits::Small."""
    limits = None if thresholds is None else variant(0, 2) + u8(thresholds[0]) + u8(thresholds[1])
    return NONE + variant(0, 3) + u8(weight) + NONE + variant(0, 3) + option(limits)


def tiny(host):  # Addr::Tiny: 10.0.0.(host % 4):80
    return variant(0, 4) + u8(host)


def pick(src=0, dst=0, open_active=True):
    req = tiny(src) + tiny(dst) + NONE  # no key
    return variant(0, OPS) + req + option(variant(0, 2) if open_active else None) + u8(0)


def conn_opened_active(backend_id):
    return variant(1, OPS) + u8(backend_id) + variant(0, 2)


def add(weight):
    return variant(9, OPS) + backend(weight)


def touch(host):
    return variant(14, OPS) + tiny(host)


def advance_ms(ms):
    return variant(15, OPS) + u32(ms)


def leap_s(secs):
    return variant(16, OPS) + u64(secs)


def write(name, cfg, backends, ops):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(cfg + RNG + vec(backends) + take_rest(ops))


NEAR_MAX = [leap_s(2**64 - 1), advance_ms(999)]  # the clock at u64::MAX s + 999 ms

os.makedirs(OUT, exist_ok=True)

# lblc: the cached backend is returned although its upper threshold (1) set the overload flag.
write("lblc-overloaded-cached-backend", config(6), [backend(5, (1, 0))], [pick(), pick()])

# Duration overflows (fixed in bf07e49: saturating time arithmetic).
write(
    "duration-overflow-persistence-insert",  # Templates::insert: now + timeout
    config(0, persistence=persistence(span_ms(300_000))),
    [backend(5)],
    [leap_s(2**64 - 1), pick()],
)
write(
    "duration-overflow-persistence-timeout-max",  # Templates::lookup: now + timeout
    config(11, persistence=persistence(SPAN_MAX)),
    [backend(5)],
    [pick(), advance_ms(1000), pick()],
)
write(
    "duration-overflow-persistence-touch",  # Templates::touch: now + timeout
    config(0, persistence=persistence(span_ms(300_000))),
    [backend(5)],
    [pick(), leap_s(2**64 - 1), touch(0)],
)
write(
    "duration-overflow-slow-start-add",  # Pool::start_ramp: now + step
    config(0, slow_start=slow_start(span_ms(10_000)), incremental=True),
    [backend(5)],
    NEAR_MAX + [add(5)],
)
write(
    "duration-overflow-slow-start-step",  # Pool::advance_ramps: now + step
    config(0, slow_start=slow_start(span_ms(10_000)), incremental=True),
    [backend(5), backend(5)],
    NEAR_MAX + [pick()],
)
write(
    "duration-overflow-lblcr-expiration-max",  # Locality::pick_replicated: last_modified + expiration
    config(7, locality=locality(SPAN_MAX, 255, span_ms(360_000))),
    [backend(1), backend(5)],
    [advance_ms(1000), pick(), conn_opened_active(0), pick(open_active=False), pick(open_active=False)],
)
