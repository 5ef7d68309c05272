use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{IdError, IdProblem};

/// A WhatsApp user's phone number in canonical form (rules K1 and K2).
///
/// Canonical form is the international number as bare digits, country code first, no `+`.
/// The Mexican (`52 1 …`) and old Brazilian mobile spellings map to one canonical number so
/// that both spellings share state. The number's region for rule R3 is computed once, here.
///
/// ```
/// use waguard_core::PhoneNumber;
/// let p = PhoneNumber::parse("+33 (6) 12-34.56.78").unwrap();
/// assert_eq!(p.digits(), "33612345678");
/// // K2: the old Mexican mobile spelling is the same person.
/// assert_eq!(
///     PhoneNumber::parse("5215512345678").unwrap(),
///     PhoneNumber::parse("525512345678").unwrap(),
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber {
    digits: Box<str>,
    #[serde(skip)]
    region: PhoneRegion,
}

/// Where a phone number is, as far as the rules need to know (rule R3).
///
/// Numbers outside the North American Numbering Plan (`+1`) are [`PhoneRegion::OutsideNanp`];
/// `+1` numbers are placed as libphonenumber places them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum PhoneRegion {
    /// Not a `+1` number.
    #[default]
    OutsideNanp,
    /// A `+1` number libphonenumber places in the United States (region `US`).
    UnitedStates,
    /// A `+1` number of Canada, the Caribbean or a US territory with its own region code.
    OtherNanp,
    /// A `+1` number libphonenumber cannot place.
    UnplacedNanp,
}

impl PhoneRegion {
    /// Builds the table of `+1` area codes that placing a number consults (once per process,
    /// from libphonenumber's metadata), if it is not built yet. The first `+1` number placed
    /// builds it otherwise: a service calls this at start so that no request pays for it
    /// (tens of milliseconds in a release build, seconds in a debug build).
    pub fn prepare() {
        let _ = nanp_table();
    }
}

impl PhoneNumber {
    /// Validates and canonicalises a phone number (K1), then folds known aliases (K2).
    ///
    /// Strips one leading `+`, ASCII whitespace, `-`, `.`, `(` and `)`; the rest must be 7 to 15
    /// digits, not starting with `0` and not one digit repeated.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let err = |problem| IdError::new("phone", value, problem);
        let body = value.trim_matches(|c: char| c.is_ascii_whitespace());
        let body = body.strip_prefix('+').unwrap_or(body);
        // Collect into a stack buffer: one allocation per number, for the final boxed string.
        let mut buf = [0u8; 15];
        let mut len = 0usize;
        for c in body.chars() {
            match c {
                '0'..='9' => {
                    if len == buf.len() {
                        return Err(err(IdProblem::PhoneLength));
                    }
                    buf[len] = c as u8;
                    len += 1;
                }
                ' ' | '\t' | '\n' | '\r' | '\x0c' | '-' | '.' | '(' | ')' => {}
                _ => return Err(err(IdProblem::NotDigits)),
            }
        }
        let digits = std::str::from_utf8(&buf[..len]).unwrap_or_default();
        if digits.is_empty() {
            return Err(err(IdProblem::Empty));
        }
        if digits.len() < 7 {
            return Err(err(IdProblem::PhoneLength));
        }
        if digits.starts_with('0') {
            return Err(err(IdProblem::LeadingZero));
        }
        let first = digits.as_bytes()[0];
        if digits.bytes().all(|b| b == first) {
            return Err(err(IdProblem::RepeatedDigit));
        }
        let digits = fold_alias(digits);
        let region = classify(&digits);
        Ok(PhoneNumber { digits, region })
    }

    /// The canonical digits, country code first.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// Where the number is, for rule R3.
    pub fn region(&self) -> PhoneRegion {
        self.region
    }
}

/// K2: Mexico `52 1 XXXXXXXXXX` -> `52 XXXXXXXXXX`; Brazil `55 AA [6-9]XXXXXXX` ->
/// `55 AA 9[6-9]XXXXXXX`.
fn fold_alias(digits: &str) -> Box<str> {
    let b = digits.as_bytes();
    if b.len() == 13 && digits.starts_with("521") {
        return format!("52{}", &digits[3..]).into_boxed_str();
    }
    let area_ok = |d: u8| (b'1'..=b'9').contains(&d);
    if b.len() == 12
        && digits.starts_with("55")
        && area_ok(b[2])
        && area_ok(b[3])
        && (b'6'..=b'9').contains(&b[4])
    {
        return format!("{}9{}", &digits[..4], &digits[4..]).into_boxed_str();
    }
    digits.into()
}

/// Region of a canonical number. Only `+1` numbers need a lookup: their region follows the
/// area code (NPA) almost everywhere, so a table of area codes is built once from
/// libphonenumber's metadata; the few area codes whose region also depends on the exchange are
/// marked mixed and those numbers are placed by a full libphonenumber parse (still once per key).
fn classify(digits: &str) -> PhoneRegion {
    if !digits.starts_with('1') {
        return PhoneRegion::OutsideNanp;
    }
    let national = &digits[1..];
    if national.len() != 10 {
        return place_with_libphonenumber(digits);
    }
    let npa: usize = national[..3].parse().unwrap_or(0);
    // The table was sampled with valid exchanges (first digit 2-9); a number whose exchange
    // starts with 0 or 1 is one libphonenumber does not accept, so it is looked up whole.
    let exchange_ok = (b'2'..=b'9').contains(&national.as_bytes()[3]);
    match nanp_table()[npa] {
        NpaClass::Uniform(region) if exchange_ok => region,
        _ => place_with_libphonenumber(digits),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NpaClass {
    Uniform(PhoneRegion),
    Mixed,
}

/// Exchanges sampled per area code when building the table; an area code whose samples do not
/// all agree is looked up number by number.
const SAMPLE_SUBSCRIBERS: [&str; 10] = [
    "2012345", "3123456", "4234567", "5345678", "6456789", "7567890", "8678901", "9789012",
    "2209876", "9990123",
];

fn nanp_table() -> &'static [NpaClass; 1000] {
    static TABLE: OnceLock<[NpaClass; 1000]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [NpaClass::Uniform(PhoneRegion::UnplacedNanp); 1000];
        for (npa, slot) in table.iter_mut().enumerate().skip(200) {
            let mut seen = None;
            for sub in SAMPLE_SUBSCRIBERS {
                let region = place_with_libphonenumber(&format!("1{npa:03}{sub}"));
                match seen {
                    None => seen = Some(region),
                    Some(prev) if prev != region => {
                        *slot = NpaClass::Mixed;
                        break;
                    }
                    Some(_) => {}
                }
            }
            if *slot != NpaClass::Mixed {
                *slot = NpaClass::Uniform(seen.unwrap_or(PhoneRegion::UnplacedNanp));
            }
        }
        table
    })
}

/// The region libphonenumber gives a `+1` number. A number libphonenumber does not hold valid
/// (an exchange starting with 0 or 1, an unassigned area code) is not placed: R3 leaves it alone.
pub(crate) fn place_with_libphonenumber(digits: &str) -> PhoneRegion {
    let Ok(number) = phonenumber::parse(None, format!("+{digits}")) else {
        return PhoneRegion::UnplacedNanp;
    };
    if !phonenumber::is_valid(&number) {
        return PhoneRegion::UnplacedNanp;
    }
    match number.country().id() {
        Some(phonenumber::country::Id::US) => PhoneRegion::UnitedStates,
        Some(_) => PhoneRegion::OtherNanp,
        None => PhoneRegion::UnplacedNanp,
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PhoneNumber::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(value: &str) -> IdProblem {
        PhoneNumber::parse(value).unwrap_err().problem
    }

    #[test]
    fn k1_strips_separators_and_one_plus() {
        for spelling in [
            "+33612345678",
            "33 6 12 34 56 78",
            "+33-6.12(34)56 78",
            " 33612345678\t",
        ] {
            assert_eq!(
                PhoneNumber::parse(spelling).unwrap().digits(),
                "33612345678"
            );
        }
    }

    #[test]
    fn k1_rejects_bad_shapes() {
        assert_eq!(problem("12345"), IdProblem::PhoneLength);
        assert_eq!(problem("1234567890123456"), IdProblem::PhoneLength);
        assert_eq!(problem("0033612345678"), IdProblem::LeadingZero);
        assert_eq!(problem("0612345678"), IdProblem::LeadingZero);
        assert_eq!(problem("7777777"), IdProblem::RepeatedDigit);
        assert_eq!(problem("++33612345678"), IdProblem::NotDigits);
        assert_eq!(problem("33612a45678"), IdProblem::NotDigits);
        assert_eq!(problem("+"), IdProblem::Empty);
        assert_eq!(problem("١٢٣٤٥٦٧٨"), IdProblem::NotDigits);
    }

    #[test]
    fn k2_mexico_old_mobile_prefix_folds() {
        let old = PhoneNumber::parse("5215512345678").unwrap();
        assert_eq!(old.digits(), "525512345678");
    }

    #[test]
    fn k2_brazil_old_mobile_gets_the_ninth_digit() {
        let old = PhoneNumber::parse("551198765432").unwrap();
        assert_eq!(old.digits(), "5511998765432");
        assert_eq!(old, PhoneNumber::parse("5511998765432").unwrap());
        // A landline (subscriber starting 2-5) is not a mobile alias.
        assert_eq!(
            PhoneNumber::parse("551132345678").unwrap().digits(),
            "551132345678"
        );
        // Area codes have no zero digit.
        assert_eq!(
            PhoneNumber::parse("551098765432").unwrap().digits(),
            "551098765432"
        );
    }

    #[test]
    fn r3_nanp_regions_follow_libphonenumber() {
        let region = |d: &str| PhoneNumber::parse(d).unwrap().region();
        assert_eq!(region("12025550143"), PhoneRegion::UnitedStates); // Washington DC
        assert_eq!(region("14155550123"), PhoneRegion::UnitedStates); // San Francisco
                                                                      // Exchanges starting with 1 are not valid numbers: libphonenumber cannot place them.
        assert_eq!(region("12021234567"), PhoneRegion::UnplacedNanp);
        assert_eq!(region("18001234567"), PhoneRegion::UnplacedNanp);
        assert_eq!(region("14165550123"), PhoneRegion::OtherNanp); // Toronto
        assert_eq!(region("17875550123"), PhoneRegion::OtherNanp); // Puerto Rico
        assert_eq!(region("16715550123"), PhoneRegion::OtherNanp); // Guam
        assert_eq!(region("18765550123"), PhoneRegion::OtherNanp); // Jamaica
        assert_eq!(region("33612345678"), PhoneRegion::OutsideNanp);
        assert_eq!(region("11234567890"), PhoneRegion::UnplacedNanp); // NPA 123 does not exist
    }
}
