//! keepalived.conf as a stream of logical lines: comments stripped, `\` continuations joined,
//! `include` expanded in place (globs, relative to the including file), `@instance`
//! conditional lines filtered, `$NAME=value` definitions substituted, and each line split into
//! words with their file, line and column.
//!
//! keepalived (2.2.7, `lib/parser.c`) reads its configuration the same way: `#` and `!` start a
//! comment anywhere outside double quotes, `\#` and `\!` are literal, a trailing `\` continues
//! the line, a quoted string is one word without its quotes, and an include is read where it
//! stands, even inside a block.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ConfigError, Location, Warning};

/// One word of a logical line and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) text: String,
    pub(crate) at: Location,
    /// Written in double quotes (so `{` and `}` inside are text, not braces).
    pub(crate) quoted: bool,
}

impl Word {
    pub(crate) fn is(&self, brace: &str) -> bool {
        !self.quoted && self.text == brace
    }
}

/// Where the configuration text comes from: the file system for [`super::load`], or memory.
pub(crate) trait Files {
    /// The contents of `path`.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The files matching `pattern` (a glob), sorted.
    fn glob(&self, pattern: &Path) -> Vec<PathBuf>;
}

/// Reads from the file system.
pub(crate) struct FileSystem;

impl Files for FileSystem {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let bytes = std::fs::read(path)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        let Some(pattern) = pattern.to_str() else {
            return Vec::new();
        };
        match glob::glob(pattern) {
            Ok(paths) => {
                let mut found: Vec<PathBuf> = paths
                    .filter_map(Result::ok)
                    .filter(|p| p.is_file())
                    .collect();
                found.sort();
                found
            }
            Err(_) => Vec::new(),
        }
    }
}

/// Reads nothing: every include is missing (for untrusted input).
pub(crate) struct NoFiles;

impl Files for NoFiles {
    fn read(&self, _: &Path) -> std::io::Result<String> {
        Err(std::io::ErrorKind::NotFound.into())
    }

    fn glob(&self, _: &Path) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// Nested includes deeper than this are a loop (keepalived has no limit and recurses forever).
const MAX_INCLUDE_DEPTH: usize = 32;

/// Reads every logical line of `path` and what it includes.
pub(crate) struct Reader<'a> {
    files: &'a dyn Files,
    instance: Option<&'a str>,
    definitions: HashMap<String, String>,
    pub(crate) warnings: Vec<Warning>,
    pub(crate) lines: Vec<Vec<Word>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(files: &'a dyn Files, instance: Option<&'a str>) -> Self {
        Reader {
            files,
            instance,
            definitions: HashMap::new(),
            warnings: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// Reads `path` (the main file: an error if it cannot be read).
    pub(crate) fn read_main(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = self.files.read(path).map_err(|e| ConfigError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        self.read_text(Arc::from(path), &text, 0)
    }

    /// Reads `text` as the contents of `file`.
    pub(crate) fn read_text(
        &mut self,
        file: Arc<Path>,
        text: &str,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let mut pending: Option<(Vec<Word>, bool)> = None; // words of a line continued with `\`
        for (index, raw) in text.lines().enumerate() {
            let line_no = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let at = |column: usize| Location {
                file: file.clone(),
                line: line_no,
                column: u32::try_from(column + 1).unwrap_or(u32::MAX),
            };
            let (content, continued) = decomment(raw).map_err(|column| ConfigError::Syntax {
                at: at(column),
                message: "unterminated quote".into(),
            })?;
            let content = self.substitute(&content);
            let mut words = match pending.take() {
                Some((words, _)) => words,
                None => Vec::new(),
            };
            split_words(&content, &at, &mut words);
            if continued {
                pending = Some((words, true));
                continue;
            }
            self.finish_line(words, depth)?;
        }
        if let Some((words, _)) = pending {
            self.finish_line(words, depth)?;
        }
        Ok(())
    }

    fn finish_line(&mut self, mut words: Vec<Word>, depth: usize) -> Result<(), ConfigError> {
        let Some(first) = words.first() else {
            return Ok(());
        };
        // `@ID line` applies only to the keepalived instance ID (`-i ID`); `@^ID` to all others.
        if !first.quoted && first.text.starts_with('@') {
            let condition = &first.text[1..];
            let applies = match condition.strip_prefix('^') {
                Some(not) => self.instance != Some(not),
                None => self.instance == Some(condition),
            };
            words.remove(0);
            if !applies || words.is_empty() {
                return Ok(());
            }
        }
        let first = &words[0];
        if !first.quoted && first.text.starts_with('$') && self.define(&words) {
            return Ok(());
        }
        if !first.quoted && first.text == "include" {
            return self.include(&words, depth);
        }
        self.lines.push(words);
        Ok(())
    }

    /// `$NAME=value` (or `$NAME = value`): a definition used later as `$NAME` or `${NAME}`.
    fn define(&mut self, words: &[Word]) -> bool {
        let joined = words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let Some((name, value)) = joined[1..].split_once('=') else {
            return false;
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        self.definitions
            .insert(name.to_owned(), value.trim().to_owned());
        true
    }

    fn substitute(&self, line: &str) -> String {
        let defines = line.trim_start().starts_with('$') && line.contains('=');
        if self.definitions.is_empty() || !line.contains('$') || defines {
            return line.to_owned();
        }
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let (name, used) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => (&inner[..end], end + 2),
                    None => ("", 0),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            match self.definitions.get(name) {
                Some(value) if !name.is_empty() => {
                    out.push_str(value);
                    rest = &after[used..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn include(&mut self, words: &[Word], depth: usize) -> Result<(), ConfigError> {
        let Some(target) = words.get(1) else {
            self.warnings.push(Warning::new(
                words[0].at.clone(),
                "include without a file name",
            ));
            return Ok(());
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::Syntax {
                at: target.at.clone(),
                message: format!(
                    "includes nested more than {MAX_INCLUDE_DEPTH} deep (an include loop?)"
                ),
            });
        }
        // keepalived changes into the including file's directory: relative names start there.
        let base = target.at.file.parent().unwrap_or(Path::new("."));
        let pattern = base.join(&target.text);
        let matches = self.files.glob(&pattern);
        if matches.is_empty() {
            self.warnings.push(Warning::new(
                target.at.clone(),
                format!(
                    "include: no file matches '{}'; skipped (as keepalived does)",
                    target.text
                ),
            ));
        }
        for path in matches {
            match self.files.read(&path) {
                Ok(text) => self.read_text(Arc::from(path.as_path()), &text, depth + 1)?,
                Err(e) => self.warnings.push(Warning::new(
                    target.at.clone(),
                    format!("include: cannot read {}: {e}; skipped", path.display()),
                )),
            }
        }
        Ok(())
    }
}

/// The line without its comment, and whether it ends with a continuation `\`. An unterminated
/// quote is an error at the quote's column.
fn decomment(raw: &str) -> Result<(String, bool), usize> {
    let mut out = String::with_capacity(raw.len());
    let mut quote_at = None;
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                quote_at = if quote_at.is_some() { None } else { Some(i) };
                out.push(c);
            }
            '\\' => match chars.peek() {
                None => return Ok((out.trim_end().to_owned(), true)),
                Some(&(_, next @ ('#' | '!'))) if quote_at.is_none() => {
                    // An escaped comment character is literal text.
                    out.push(next);
                    chars.next();
                }
                Some(&(_, next)) => {
                    out.push(c);
                    out.push(next);
                    chars.next();
                }
            },
            '#' | '!' if quote_at.is_none() => break,
            _ => out.push(c),
        }
    }
    match quote_at {
        Some(column) => Err(raw[..column].chars().count()),
        None => Ok((out, false)),
    }
}

/// Splits one line into words: whitespace separates, `"..."` is one word, `{` and `}` are words
/// of their own.
fn split_words(line: &str, at: &dyn Fn(usize) -> Location, words: &mut Vec<Word>) {
    let mut chars = line.char_indices().peekable();
    let column = |byte: usize| line[..byte].chars().count();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut text = String::new();
            for (_, c) in chars.by_ref() {
                if c == '"' {
                    break;
                }
                text.push(c);
            }
            words.push(Word {
                text,
                at: at(column(start)),
                quoted: true,
            });
        } else if c == '{' || c == '}' {
            chars.next();
            words.push(Word {
                text: c.to_string(),
                at: at(column(start)),
                quoted: false,
            });
        } else {
            let mut text = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() || c == '"' || c == '{' || c == '}' {
                    break;
                }
                text.push(c);
                chars.next();
            }
            words.push(Word {
                text,
                at: at(column(start)),
                quoted: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_quotes_and_continuations() {
        assert_eq!(decomment("a b # c").unwrap(), ("a b ".into(), false));
        assert_eq!(decomment("a ! c").unwrap(), ("a ".into(), false));
        assert_eq!(
            decomment(r#"notify "/x #1" # c"#).unwrap().0,
            r#"notify "/x #1" "#
        );
        assert_eq!(decomment(r"a \# b").unwrap().0, "a # b");
        assert_eq!(decomment(r"a b \").unwrap(), ("a b".into(), true));
        assert_eq!(decomment(r#"x "open"#).unwrap_err(), 2);
    }

    #[test]
    fn words_braces_and_positions() {
        let file: Arc<Path> = Arc::from(Path::new("k.conf"));
        let at = |c: usize| Location {
            file: file.clone(),
            line: 3,
            column: u32::try_from(c + 1).unwrap(),
        };
        let mut words = Vec::new();
        split_words(r#"  unicast_peer {10.0.0.2 "a b"}"#, &at, &mut words);
        let texts: Vec<_> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["unicast_peer", "{", "10.0.0.2", "a b", "}"]);
        assert_eq!(words[2].at.column, 17);
        assert!(words[3].quoted);
    }
}
