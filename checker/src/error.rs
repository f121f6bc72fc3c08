//! Typed errors of the checker.

use std::fmt;

/// Everything that can go wrong reading or checking a history.
///
/// Every variant names the history (`name`: usually the file path) and, where one
/// exists, the 1-based line the problem was found on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The history could not be read at all.
    #[error("{name}: cannot read: {error}")]
    Io {
        /// The history's name (file path).
        name: String,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// A line of the history is malformed or does not fit the rest of the history.
    #[error("{name}:{line}: {message}")]
    Line {
        /// The history's name (file path).
        name: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The history as a whole is unusable (empty, or of an unknown format).
    #[error("{name}: {message}")]
    Input {
        /// The history's name (file path).
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    pub(crate) fn line(name: &str, line: usize, message: impl fmt::Display) -> Self {
        Error::Line { name: name.to_string(), line, message: message.to_string() }
    }

    pub(crate) fn input(name: &str, message: impl fmt::Display) -> Self {
        Error::Input { name: name.to_string(), message: message.to_string() }
    }
}
