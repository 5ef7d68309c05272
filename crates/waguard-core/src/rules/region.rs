//! Steps 2 and 6: where the contact is (rules R1-R3). No parsing here: the phone number's region
//! was computed once when the key was built.

use crate::decision::{BlockReason, Decision};
use crate::id::{ContactId, ContactKey, PhoneRegion};
use crate::policy::Policy;

use super::blocked;

/// R1 (and R2 when enabled): sanctioned regions receive nothing. Groups have no region.
pub fn restricted(key: &ContactKey, policy: &Policy) -> Option<Decision> {
    let hit = match &key.contact {
        ContactId::Phone(p) => policy.is_restricted_phone(p.digits()),
        ContactId::User(u) => policy.is_restricted_country(u.country()),
        ContactId::Group(_) => false,
    };
    hit.then(|| blocked(BlockReason::RestrictedRegion, None))
}

/// R3: Meta does not deliver marketing templates to US users (since 2025-04-01).
pub fn marketing_unavailable(key: &ContactKey, policy: &Policy) -> Option<Decision> {
    if !policy.block_us_marketing {
        return None;
    }
    let us = match &key.contact {
        ContactId::Phone(p) => p.region() == PhoneRegion::UnitedStates,
        ContactId::User(u) => u.country() == "US",
        ContactId::Group(_) => false,
    };
    us.then(|| blocked(BlockReason::MarketingUnavailableInRegion, None))
}
