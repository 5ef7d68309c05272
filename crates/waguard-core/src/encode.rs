//! The stored form of state records, owned by the core: stores persist these bytes and never
//! look inside.
//!
//! A record is one version byte followed by the state in postcard's compact varint encoding.
//! Decoding reads every version up to [`FORMAT_VERSION`]; a newer version byte is a typed error
//! (upgrade waguard), never a silently reset state.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::DecodeError;
use crate::state::{ConversationState, SenderState};

/// The format version this build writes.
pub const FORMAT_VERSION: u8 = 1;

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.push(FORMAT_VERSION);
    // Serialising plain structs of integers and vectors into a Vec cannot fail.
    postcard::to_extend(value, out).expect("postcard serialisation into a Vec is infallible")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    match version {
        1 => {
            let (value, rest) = postcard::take_from_bytes::<T>(body)
                .map_err(|source| DecodeError::Corrupt { version, source })?;
            if rest.is_empty() {
                Ok(value)
            } else {
                Err(DecodeError::TrailingBytes {
                    version,
                    extra: rest.len(),
                })
            }
        }
        found => Err(DecodeError::NewerVersion {
            found,
            supported: FORMAT_VERSION,
        }),
    }
}

impl ConversationState {
    /// The stored form of this state.
    ///
    /// ```
    /// use waguard_core::{ConversationState, Event, Policy, Timestamp};
    /// let mut s = ConversationState::default();
    /// s.apply(&Event::Inbound { at: Timestamp::from_unix_seconds(1).unwrap(), text: None, referral: false }, &Policy::default());
    /// let bytes = s.encode();
    /// assert_eq!(ConversationState::decode(&bytes).unwrap(), s);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads a stored contact record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes)
    }
}

impl SenderState {
    /// The stored form of this sender state.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads a stored sender record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes)
    }
}
