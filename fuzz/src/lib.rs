//! What the fuzz targets share: the random number generator they hand to lb-sched.

use arbitrary::Arbitrary;
use core::convert::Infallible;
use rand_core::TryRng;

/// A deterministic generator: a xorshift, a constant, or a fixed cycle of words (so that an
/// input can replay exact draws).
#[derive(Clone, Debug)]
pub enum FuzzRng {
    XorShift(u64),
    Constant(u64),
    Cycle { values: Vec<u64>, next: usize },
}

impl FuzzRng {
    /// The generator an input asks for.
    pub fn from_spec(spec: &RngSpec) -> Self {
        match spec {
            RngSpec::XorShift(seed) => FuzzRng::XorShift(*seed | 1),
            RngSpec::Constant(v) => FuzzRng::Constant(*v),
            RngSpec::Cycle(values) => FuzzRng::Cycle {
                values: values.clone(),
                next: 0,
            },
        }
    }

    fn next(&mut self) -> u64 {
        match self {
            FuzzRng::XorShift(x) => {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                *x
            }
            FuzzRng::Constant(v) => *v,
            FuzzRng::Cycle { values, next } => {
                if values.is_empty() {
                    return 0;
                }
                let v = values[*next % values.len()];
                *next = (*next + 1) % values.len();
                v
            }
        }
    }
}

impl TryRng for FuzzRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// The generator as an input describes it.
#[derive(Arbitrary, Debug)]
pub enum RngSpec {
    XorShift(u64),
    Constant(u64),
    Cycle(Vec<u64>),
}
