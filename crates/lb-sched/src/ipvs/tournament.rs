//! The IPVS schedulers that scan the whole list for the best backend, `lc`, `wlc`, `sed`,
//! `nq`, `fo` and `ovf` (ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c, ip_vs_fo.c,
//! ip_vs_ovf.c), on a tournament tree instead of the kernel's list scan.
//!
//! The kernel keeps the first backend in list order with the lowest cost (weighted costs
//! compared by cross-multiplication) or the highest weight. Every node of the tree holds the winner of its two children,
//! the left one on a tie; since left leaves come first in the list, the root is exactly the
//! kernel's choice. A pick reads the root; a load, weight or state change of one backend
//! replays only its path to the root.

use crate::Backend;
use alloc::vec::Vec;

/// How the family compares two backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// `lc`: the lowest `active * 256 + inactive`.
    Lc,
    /// `wlc` (and the `lblc` / `lblcr` fallback): the lowest overhead per unit of weight.
    Wlc,
    /// `sed`: the lowest `(active + 1) / weight`.
    Sed,
    /// `nq`: the first idle backend, else `sed`.
    Nq,
    /// `fo`: the highest weight.
    Fo,
    /// `ovf`: the highest weight among backends with no more active connections than their
    /// weight.
    Ovf,
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Debug)]
pub(crate) struct Tournament {
    rule: Rule,
    /// Number of leaves: a power of two at least the number of backends.
    leaves: usize,
    /// Heap-ordered nodes (root at 1, leaves at `leaves..2 * leaves`), each a backend position
    /// or `NONE`.
    nodes: Vec<u32>,
}

impl Rule {
    /// The cost IPVS minimises, as a fraction `(numerator, denominator)`; `fo` and `ovf`
    /// minimise the inverse of the weight.
    pub(crate) fn cost(self, b: &Backend) -> (u64, u32) {
        match self {
            Rule::Lc => (b.load.ipvs_overhead(), 1),
            Rule::Wlc => (b.load.ipvs_overhead(), b.effective_weight),
            Rule::Sed | Rule::Nq => (b.load.active as u64 + 1, b.effective_weight),
            Rule::Fo | Rule::Ovf => (1, b.effective_weight),
        }
    }

    /// Whether the rule lets this backend compete at all.
    #[inline]
    pub(crate) fn admits(self, b: &Backend) -> bool {
        b.is_schedulable() && (self != Rule::Ovf || b.load.active <= b.effective_weight)
    }

    /// Whether `right` strictly beats `left` (which comes first in the list).
    #[inline]
    fn right_wins(self, left: &Backend, right: &Backend) -> bool {
        if self == Rule::Nq && (left.load.active == 0 || right.load.active == 0) {
            return left.load.active != 0;
        }
        let (ln, lw) = self.cost(left);
        let (rn, rw) = self.cost(right);
        ln as u128 * rw as u128 > rn as u128 * lw as u128
    }
}

impl Tournament {
    pub(crate) fn new(rule: Rule, backends: &[Backend]) -> Self {
        let mut tree = Tournament {
            rule,
            leaves: 0,
            nodes: Vec::new(),
        };
        tree.rebuild(backends);
        tree
    }

    pub(crate) fn rule(&self) -> Rule {
        self.rule
    }

    /// Rebuilds every node: after an add or a removal.
    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        self.leaves = backends.len().next_power_of_two();
        self.nodes.clear();
        self.nodes.resize(2 * self.leaves, NONE);
        for (i, b) in backends.iter().enumerate() {
            self.nodes[self.leaves + i] = if self.rule.admits(b) { i as u32 } else { NONE };
        }
        for node in (1..self.leaves).rev() {
            self.nodes[node] = self.winner(backends, node);
        }
    }

    /// Replays the path of one backend whose load, weight or state changed.
    #[inline]
    pub(crate) fn update(&mut self, backends: &[Backend], pos: usize) {
        let Some(b) = backends.get(pos) else { return };
        let mut node = self.leaves + pos;
        self.nodes[node] = if self.rule.admits(b) {
            pos as u32
        } else {
            NONE
        };
        while node > 1 {
            node /= 2;
            let winner = self.winner(backends, node);
            if self.nodes[node] == winner && winner != pos as u32 {
                // Nothing above can change: this subtree's winner is another backend whose
                // standing did not move.
                break;
            }
            self.nodes[node] = winner;
        }
    }

    #[inline]
    fn winner(&self, backends: &[Backend], node: usize) -> u32 {
        let (l, r) = (self.nodes[2 * node], self.nodes[2 * node + 1]);
        if l == NONE {
            return r;
        }
        if r == NONE {
            return l;
        }
        if self
            .rule
            .right_wins(&backends[l as usize], &backends[r as usize])
        {
            r
        } else {
            l
        }
    }

    /// The kernel's choice: the root.
    #[inline]
    pub(crate) fn pick(&self) -> Option<usize> {
        match self.nodes.get(1).copied() {
            Some(NONE) | None => None,
            Some(pos) => Some(pos as usize),
        }
    }
}
