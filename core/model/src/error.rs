//! One error type for the whole core.
//!
//! Every error carries a stable [`ErrorKind`] (hosts map it to a code such as `BAD_MODEL`
//! for JS or a status for HTTP) and a message written for the person who has to fix it:
//! what was wrong, where, and what to do.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The model bytes or the model graph are invalid (truncated, corrupt, inconsistent shapes).
    BadModel,
    /// An input tensor/image/dataset is invalid (wrong length, NaN, bad dimensions).
    BadInput,
    /// Well-formed, but uses something this build cannot run (a newer format, a dtype without kernel).
    Unsupported,
    /// The model is well formed but the reader's trust policy refuses it: unsigned, signed by a
    /// key that is not trusted, or a signature that does not verify (the file was changed after
    /// it was signed). Distinct from `BadModel` so a host can tell "corrupt" from "not allowed".
    Untrusted,
    /// An encrypted model that could not be decrypted: no key given, a key with another id, or
    /// authentication failed (the ciphertext or its clear metadata was changed, or a wrong key).
    DecryptFailed,
}

impl ErrorKind {
    /// Stable, machine-readable code shared by every host (JS `error.code`, HTTP JSON errors).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadModel => "BAD_MODEL",
            ErrorKind::BadInput => "BAD_INPUT",
            ErrorKind::Unsupported => "UNSUPPORTED",
            ErrorKind::Untrusted => "UNTRUSTED",
            ErrorKind::DecryptFailed => "DECRYPT_FAILED",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn bad_model(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::BadModel, message: message.into() }
    }
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::BadInput, message: message.into() }
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Unsupported, message: message.into() }
    }
    pub fn untrusted(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Untrusted, message: message.into() }
    }
    pub fn decrypt_failed(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::DecryptFailed, message: message.into() }
    }
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
