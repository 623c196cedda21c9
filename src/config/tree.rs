//! Logical lines into a tree of statements: a statement is a keyword with its words on one line,
//! optionally followed by a `{ ... }` block of statements. The opening brace may end the
//! keyword's line or stand on the next line; several statements may share one line with the
//! braces (`unicast_peer { 10.0.0.2 }`).

use super::source::Word;
use super::{ConfigError, Location};

/// One statement: `words[0]` is the keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) words: Vec<Word>,
    pub(crate) block: Option<Vec<Node>>,
}

impl Node {
    pub(crate) fn keyword(&self) -> &str {
        &self.words[0].text
    }

    pub(crate) fn at(&self) -> &Location {
        &self.words[0].at
    }

    /// The words after the keyword.
    pub(crate) fn args(&self) -> &[Word] {
        &self.words[1..]
    }
}

/// Builds the tree. An unmatched `}`, a block never closed, or a `{` with no keyword before it
/// is a syntax error at its position.
pub(crate) fn build(lines: Vec<Vec<Word>>) -> Result<Vec<Node>, ConfigError> {
    // Open blocks: the statements gathered so far and the brace that opened each.
    let mut stack: Vec<(Vec<Node>, Location)> = Vec::new();
    let mut current: Vec<Node> = Vec::new();
    for line in lines {
        let mut words: Vec<Word> = Vec::new();
        for word in line {
            if word.is("{") {
                if words.is_empty() {
                    // A brace on its own line opens the previous statement's block.
                    match current.pop() {
                        Some(node) if node.block.is_none() => words = node.words,
                        Some(node) => {
                            current.push(node);
                            return Err(syntax(&word.at, "'{' without a keyword before it"));
                        }
                        None => return Err(syntax(&word.at, "'{' without a keyword before it")),
                    }
                }
                current.push(Node {
                    words: std::mem::take(&mut words),
                    block: None,
                });
                stack.push((std::mem::take(&mut current), word.at));
            } else if word.is("}") {
                if !words.is_empty() {
                    current.push(Node {
                        words: std::mem::take(&mut words),
                        block: None,
                    });
                }
                let Some((mut parent, _)) = stack.pop() else {
                    return Err(syntax(&word.at, "'}' without a matching '{'"));
                };
                let block = std::mem::take(&mut current);
                if let Some(owner) = parent.last_mut() {
                    owner.block = Some(block);
                }
                current = parent;
            } else {
                words.push(word);
            }
        }
        if !words.is_empty() {
            current.push(Node { words, block: None });
        }
    }
    if let Some((_, opened)) = stack.pop() {
        return Err(syntax(&opened, "'{' is never closed"));
    }
    Ok(current)
}

fn syntax(at: &Location, message: &str) -> ConfigError {
    ConfigError::Syntax {
        at: at.clone(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::{NoFiles, Reader};
    use super::*;
    use std::path::Path;

    fn tree(text: &str) -> Result<Vec<Node>, ConfigError> {
        let mut reader = Reader::new(&NoFiles, None);
        reader.read_text(std::sync::Arc::from(Path::new("t.conf")), text, 0)?;
        build(reader.lines)
    }

    fn shape(nodes: &[Node]) -> String {
        nodes
            .iter()
            .map(|n| {
                let words: Vec<_> = n.words.iter().map(|w| w.text.as_str()).collect();
                match &n.block {
                    Some(b) => format!("{}[{}]", words.join(" "), shape(b)),
                    None => words.join(" "),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn blocks_on_one_line_own_line_and_nested() {
        let t = tree("a 1 {\n b 2\n c { d }\n}\ne\n{\n f\n}\ng { h i } ").unwrap();
        assert_eq!(shape(&t), "a 1[b 2; c[d]]; e[f]; g[h i]");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = tree("a {\n b\n").unwrap_err().to_string();
        assert_eq!(e, "t.conf:1:3: syntax error: '{' is never closed");
        let e = tree("a\n  }\n").unwrap_err().to_string();
        assert_eq!(e, "t.conf:2:3: syntax error: '}' without a matching '{'");
        let e = tree("{ a }").unwrap_err().to_string();
        assert_eq!(
            e,
            "t.conf:1:1: syntax error: '{' without a keyword before it"
        );
        let e = tree("a \"b\n").unwrap_err().to_string();
        assert_eq!(e, "t.conf:1:3: syntax error: unterminated quote");
    }

    #[test]
    fn conditional_lines_and_definitions() {
        let mut reader = Reader::new(&NoFiles, Some("high"));
        let text = "@high p 1\n@low p 2\n@^low q 3\n$PORT=8080\nvs ${PORT} $PORT $NOPE\n";
        reader
            .read_text(std::sync::Arc::from(Path::new("t.conf")), text, 0)
            .unwrap();
        assert_eq!(
            shape(&build(reader.lines).unwrap()),
            "p 1; q 3; vs 8080 8080 $NOPE"
        );
    }
}
