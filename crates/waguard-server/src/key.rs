//! Contact keys from the fields of a request: the same words in replay lines, `/v1` bodies,
//! command-line flags and URL paths.

use waguard::{Bsuid, BusinessId, ContactId, ContactKey, GroupId, PhoneNumber};

/// Builds a key from a business id and exactly one of phone, user id or group id; the error
/// names the field (`{prefix}to`, ...) and says what a valid value looks like.
pub fn key_from_parts(
    prefix: &str,
    from: Option<&str>,
    to: Option<&str>,
    user_id: Option<&str>,
    group_id: Option<&str>,
) -> Result<ContactKey, String> {
    let business = business_from(prefix, from)?;
    let contact = match (to, user_id, group_id) {
        (Some(to), None, None) => PhoneNumber::parse(to)
            .map(ContactId::Phone)
            .map_err(|e| format!("`{prefix}to`: {}", e.with_field("to")))?,
        (None, Some(user), None) => {
            let user = Bsuid::parse(user)
                .map_err(|e| format!("`{prefix}user_id`: {}", e.with_field("user_id")))?;
            // K3: a portfolio-wide parent id names no one person; state is never kept under it,
            // so a check by it would miss the user's own opt-out.
            if user.is_parent() {
                return Err(format!(
                    "`{prefix}user_id`: `{}` is a portfolio-wide parent id (`CC.ENT.…`), \
                     never a contact key (rule K3): name the user by their BSUID or phone number",
                    user.as_str()
                ));
            }
            ContactId::User(user)
        }
        (None, None, Some(group)) => GroupId::parse(group)
            .map(ContactId::Group)
            .map_err(|e| format!("`{prefix}group_id`: {}", e.with_field("group_id")))?,
        (None, None, None) => {
            return Err(format!(
                "no contact: give exactly one of `{prefix}to` (phone), `{prefix}user_id` or `{prefix}group_id`"
            ))
        }
        _ => {
            return Err(format!(
                "give exactly one of `{prefix}to`, `{prefix}user_id` or `{prefix}group_id`, not several"
            ))
        }
    };
    Ok(ContactKey::new(business, contact))
}

/// Validates a business id; the error names the field `{prefix}from`.
pub fn business_from(prefix: &str, from: Option<&str>) -> Result<BusinessId, String> {
    let from =
        from.ok_or_else(|| format!("`{prefix}from`: missing; give the business phone number id"))?;
    BusinessId::parse(from).map_err(|e| format!("`{prefix}from`: {}", e.with_field("from")))
}

/// Reads the `{business}/{contact}` of a URL path: `contact` is `p:PHONE`, `u:USER_ID` or
/// `g:GROUP_ID`, or a bare phone number (a bare value with a dot is a business-scoped user id).
///
/// ```
/// use waguard_server::key::contact_key_from_path;
/// assert_eq!(contact_key_from_path("1", "33612345678").unwrap().to_string(), "1/p:33612345678");
/// assert!(contact_key_from_path("1", "u:US.13491208655302741918").is_ok());
/// assert!(contact_key_from_path("1", "p:12").unwrap_err().contains("`to`"));
/// ```
pub fn contact_key_from_path(business: &str, contact: &str) -> Result<ContactKey, String> {
    let business = Some(business);
    match contact.split_once(':') {
        Some(("p", id)) => key_from_parts("", business, Some(id), None, None),
        Some(("u", id)) => key_from_parts("", business, None, Some(id), None),
        Some(("g", id)) => key_from_parts("", business, None, None, Some(id)),
        _ if contact.contains('.') => key_from_parts("", business, None, Some(contact), None),
        _ => key_from_parts("", business, Some(contact), None, None),
    }
}
