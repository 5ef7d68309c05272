//! Validated identifiers (rules K1-K4): raw strings never reach the rules.

mod business;
mod contact;
mod key;
mod phone;

pub use business::{AccountId, BusinessId};
pub use contact::{Bsuid, ContactId, GroupId};
pub use key::{ContactKey, KeyParseError};
pub use phone::{PhoneNumber, PhoneRegion};
