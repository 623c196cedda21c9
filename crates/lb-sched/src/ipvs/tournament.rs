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
    /// Heap-ordered nodes (root at 1, leaves at `leaves..2 * leaves`).
    nodes: Vec<Node>,
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

    /// The cost as the tree stores it: `nq` ranks every idle backend equal and ahead of the
    /// busy ones, which the first-in-list tie-break then orders.
    #[inline]
    fn key(self, b: &Backend, pos: usize) -> Node {
        let (num, den) = match self {
            Rule::Nq if b.load.active == 0 => (0, 1),
            _ => self.cost(b),
        };
        Node::new(num, den, pos as u32)
    }
}

/// A node: the winning backend of its subtree and that backend's cost, kept in the node so
/// that replaying a path reads sibling nodes, which sit next to each other, and never the
/// backends themselves. Two words (the cost's numerator; its denominator above the position)
/// so that nodes move through registers whole: a struct of narrower fields is stored piecewise
/// and read back wide, which stalls store forwarding on every level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Node {
    num: u64,
    /// `denominator << 32 | position`.
    tag: u64,
}

const EMPTY: Node = Node {
    num: 0,
    tag: NONE as u64,
};

impl Node {
    #[inline]
    fn new(num: u64, den: u32, pos: u32) -> Node {
        Node {
            num,
            tag: (den as u64) << 32 | pos as u64,
        }
    }

    #[inline]
    fn pos(self) -> u32 {
        self.tag as u32
    }

    #[inline]
    fn den(self) -> u64 {
        self.tag >> 32
    }

    /// The winner of two subtrees, the left one (earlier in the list) on a tie. Which side
    /// wins is data-dependent and unpredictable, so the choice is made with a mask rather than
    /// a branch.
    #[inline]
    fn winner(left: Node, right: Node) -> Node {
        let right_better =
            left.num as u128 * right.den() as u128 > right.num as u128 * left.den() as u128;
        let take_right = (left.pos() == NONE) | ((right.pos() != NONE) & right_better);
        let m = (take_right as u64).wrapping_neg();
        Node {
            num: (left.num & !m) | (right.num & m),
            tag: (left.tag & !m) | (right.tag & m),
        }
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

    fn leaf(&self, b: &Backend, pos: usize) -> Node {
        if self.rule.admits(b) {
            self.rule.key(b, pos)
        } else {
            EMPTY
        }
    }

    /// Rebuilds every node: after an add or a removal.
    pub(crate) fn rebuild(&mut self, backends: &[Backend]) {
        self.leaves = backends.len().next_power_of_two();
        self.nodes.clear();
        self.nodes.resize(2 * self.leaves, EMPTY);
        for (i, b) in backends.iter().enumerate() {
            self.nodes[self.leaves + i] = self.leaf(b, i);
        }
        for node in (1..self.leaves).rev() {
            self.nodes[node] = Node::winner(self.nodes[2 * node], self.nodes[2 * node + 1]);
        }
    }

    /// Replays the path of one backend whose load, weight or state changed, stopping where a
    /// node comes out as it was: nothing above it can change.
    #[inline]
    pub(crate) fn update(&mut self, backends: &[Backend], pos: usize) {
        let Some(b) = backends.get(pos) else { return };
        let mut node = self.leaves + pos;
        // The path's current node stays in a register: each level loads only the sibling.
        let mut current = self.leaf(b, pos);
        self.nodes[node] = current;
        while node > 1 {
            let sibling = self.nodes[node ^ 1];
            current = if node & 1 == 0 {
                Node::winner(current, sibling)
            } else {
                Node::winner(sibling, current)
            };
            node /= 2;
            if self.nodes[node] == current {
                break;
            }
            self.nodes[node] = current;
        }
    }

    /// The kernel's choice: the root.
    #[inline]
    pub(crate) fn pick(&self) -> Option<usize> {
        match self.nodes.get(1) {
            Some(n) if n.pos() != NONE => Some(n.pos() as usize),
            _ => None,
        }
    }
}
