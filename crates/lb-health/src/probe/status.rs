//! Sets of HTTP status codes written as keepalived writes them: `200-299 400-499 503`.

use core::fmt;
use core::str::FromStr;

use crate::Error;

/// A set of status codes: inclusive ranges, kept sorted. The default is `200-299`
/// (keepalived's `status_code` default).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatusSet {
    ranges: Vec<(u16, u16)>,
}

impl Default for StatusSet {
    fn default() -> StatusSet {
        StatusSet {
            ranges: vec![(200, 299)],
        }
    }
}

impl StatusSet {
    /// One code.
    pub fn single(code: u16) -> StatusSet {
        StatusSet {
            ranges: vec![(code, code)],
        }
    }

    /// Whether `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

impl FromStr for StatusSet {
    type Err = Error;

    /// Codes or `LO-HI` ranges from 100 to 999, separated by spaces or commas.
    fn from_str(s: &str) -> Result<StatusSet, Error> {
        let bad = || Error::InvalidStatusSet(s.to_owned());
        let code = |t: &str| {
            t.parse::<u16>()
                .ok()
                .filter(|c| (100..=999).contains(c))
                .ok_or_else(bad)
        };
        let mut ranges = Vec::new();
        for item in s.split([' ', ',']).filter(|t| !t.is_empty()) {
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (code(a)?, code(b)?),
                None => (code(item)?, code(item)?),
            };
            if lo > hi {
                return Err(bad());
            }
            ranges.push((lo, hi));
        }
        if ranges.is_empty() {
            return Err(bad());
        }
        ranges.sort_unstable();
        Ok(StatusSet { ranges })
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_syntax() {
        let s: StatusSet = "200-299 503".parse().unwrap();
        assert!(s.contains(200) && s.contains(299) && s.contains(503));
        assert!(!s.contains(300) && !s.contains(502) && !s.contains(199));
        assert_eq!(s.to_string(), "200-299 503");
        assert_eq!(
            "503,200".parse::<StatusSet>().unwrap().to_string(),
            "200 503"
        );
        assert!(StatusSet::default().contains(204));
    }

    #[test]
    fn rejects() {
        for bad in ["", "abc", "299-200", "99", "1000", "200-", "-", "200--300"] {
            assert!(bad.parse::<StatusSet>().is_err(), "{bad:?}");
        }
    }
}
