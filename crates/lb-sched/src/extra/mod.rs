//! Schedulers from outside IPVS: nginx's smooth weighted round robin, Envoy's earliest deadline
//! first, weighted random and power of d choices.

pub(crate) mod edf;
pub(crate) mod random;
pub(crate) mod smooth;
