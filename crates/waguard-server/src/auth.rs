//! Bearer tokens for the `/v1` endpoints, compared in constant time.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The tokens a `/v1` caller may present as `Authorization: Bearer <token>`.
///
/// Only their SHA-256 digests are kept; a presented token is hashed and compared with every
/// digest in constant time, so neither the time taken nor an early exit tells a caller how
/// much of a token it guessed, or which token it matched.
///
/// ```
/// use waguard_server::Tokens;
/// let tokens = Tokens::new(["s3cret-a", "s3cret-b"]).unwrap();
/// assert!(tokens.accepts("s3cret-b"));
/// assert!(!tokens.accepts("s3cret-"));
/// assert!(Tokens::new(Vec::<String>::new()).is_err());
/// ```
#[derive(Clone)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} tokens)", self.digests.len())
    }
}

/// The tokens could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokensError {
    /// The tokens file could not be read.
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No token at all: every call would be refused.
    #[error("no token: give at least one (one per line in the tokens file; blank lines and lines starting with # are skipped)")]
    Empty,
    /// A token too short to be a secret.
    #[error("a token has {length} characters; use at least {min} (for example 32 random hex digits)", min = Tokens::MIN_LENGTH)]
    TooShort {
        /// Its length.
        length: usize,
    },
}

impl Tokens {
    /// The shortest token accepted.
    pub const MIN_LENGTH: usize = 8;

    /// These tokens; at least one, each at least [`Tokens::MIN_LENGTH`] characters.
    pub fn new<I, T>(tokens: I) -> Result<Self, TokensError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut digests = Vec::new();
        for token in tokens {
            let token = token.as_ref();
            if token.chars().count() < Self::MIN_LENGTH {
                return Err(TokensError::TooShort {
                    length: token.chars().count(),
                });
            }
            digests.push(Sha256::digest(token.as_bytes()).into());
        }
        if digests.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(Tokens { digests })
    }

    /// The tokens of a file, one per line (surrounding whitespace trimmed); blank lines and
    /// lines starting with `#` are skipped.
    pub fn from_file(path: &Path) -> Result<Self, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::new(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        )
    }

    /// Whether `token` is one of these, in time that depends only on the number of tokens.
    pub fn accepts(&self, token: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        for digest in &self.digests {
            found |= digest.ct_eq(&presented);
        }
        found.into()
    }

    /// Whether an `Authorization` header value (`Bearer <token>`, the scheme in any case)
    /// carries an accepted token.
    pub fn accepts_header(&self, value: &str) -> bool {
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                self.accepts(token.trim())
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_has_one_token_per_line() {
        let dir = std::env::temp_dir().join(format!("waguard-tokens-{}", std::process::id()));
        std::fs::write(
            &dir,
            "# the sidecar's callers\n\n  token-one-123  \ntoken-two-456\n",
        )
        .unwrap();
        let tokens = Tokens::from_file(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(tokens.accepts("token-one-123"));
        assert!(tokens.accepts_header("Bearer token-two-456"));
        assert!(tokens.accepts_header("bearer token-two-456"));
        assert!(!tokens.accepts_header("Basic token-two-456"));
        assert!(!tokens.accepts_header("token-two-456"));
        assert!(!tokens.accepts("# the sidecar's callers"));
        assert!(matches!(
            Tokens::new(["short"]),
            Err(TokensError::TooShort { length: 5 })
        ));
    }
}
