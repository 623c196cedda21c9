//! IPVS `rr` (ip_vs_rr.c).

use crate::roster::Roster;

/// The kernel's cursor: the last backend picked, or the list head.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoundRobin {
    cursor: Option<usize>,
}

impl RoundRobin {
    /// The next schedulable backend after the cursor, wrapping once; the cursor itself is
    /// tried last.
    #[inline]
    pub(crate) fn pick(&mut self, roster: &Roster, len: usize) -> Option<usize> {
        let start = self.cursor.map_or(0, |c| c + 1);
        let found = roster.next_schedulable(if start >= len { 0 } else { start })?;
        self.cursor = Some(found);
        Some(found)
    }

    /// `ip_vs_rr_del_dest`: a removed cursor falls back to the entry before it.
    pub(crate) fn removed(&mut self, pos: usize) {
        self.cursor = match self.cursor {
            Some(c) if c == pos => pos.checked_sub(1),
            Some(c) if c > pos => Some(c - 1),
            other => other,
        };
    }

    /// Where the next scan starts, for explanations.
    pub(crate) fn cursor(&self) -> Option<usize> {
        self.cursor
    }
}
