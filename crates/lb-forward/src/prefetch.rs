//! A cache prefetch hint, so that the table lookups of a batch of frames overlap their cache
//! misses instead of waiting for each in turn (see `Forwarder::prefetch`).
// `_mm_prefetch` is an intrinsic the compiler only lets an `unsafe` block call.
#![allow(unsafe_code)]

/// Starts loading the cache line holding `*at` into every cache level. A hint: no effect on
/// what the program computes.
#[inline(always)]
pub(crate) fn prefetch<T>(at: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program and never faults, whatever the
    // address; this one is of a live reference anyway. SSE is part of every x86_64 target.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((at as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
