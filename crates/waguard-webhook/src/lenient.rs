//! Building blocks that let one pass of `serde_json` read any structurally valid JSON into the
//! payload types without failing (rule H1).
//!
//! A derived `Deserialize` stops the whole payload at the first field of an unexpected type or
//! at a duplicated key; Meta adds fields and types over time, and one malformed item must not
//! hide the others. So every leaf is a [`Value`] (any JSON value, strings borrowed when
//! unescaped), every nested object an [`Obj`], every array an [`Arr`], and every struct reads
//! its keys by hand (see `lenient_struct!`): unknown keys are skipped, a repeated key keeps the
//! last value. Whether a value has the expected type is decided later, by the conversion, which
//! can then report the item's JSON path.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The kind of a JSON value, for messages that say what was found instead of what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JsonKind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        })
    }
}

/// Any JSON value at a leaf of the payload. Strings are borrowed from the body when they hold
/// no escape; arrays and objects found where a scalar was expected are skipped, only their kind
/// is kept.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer (JSON numbers without fraction or exponent that fit in an `i64`).
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array (contents skipped).
    Array,
    /// An object (contents skipped).
    Object,
}

impl<'a> Value<'a> {
    /// The kind of this value.
    pub fn kind(&self) -> JsonKind {
        match self {
            Value::Null => JsonKind::Null,
            Value::Bool(_) => JsonKind::Bool,
            Value::Int(_) | Value::Float(_) => JsonKind::Number,
            Value::Str(_) => JsonKind::String,
            Value::Array => JsonKind::Array,
            Value::Object => JsonKind::Object,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer written as a JSON integer or as a string of ASCII digits (with an optional
    /// leading `-`), as Meta writes timestamps and error codes.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) => parse_int(s),
            _ => None,
        }
    }
}

/// Parses `-?[0-9]+` that fits in an `i64`, without allocating; anything else is `None`.
fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b - b'0');
        n = n.checked_mul(10)?;
        n = if neg {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        // Above i64::MAX: kept as a (lossy) float; no timestamp or code is that large.
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Object)
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// A nested object read as `T`, or the kind of value found instead of an object.
#[derive(Clone, Debug, PartialEq)]
pub enum Obj<T> {
    /// An object, read as `T`.
    Ok(T),
    /// Something else than an object was found (its contents are skipped).
    Wrong(JsonKind),
}

impl<T> Obj<T> {
    /// The object, if it was one.
    pub fn get(&self) -> Option<&T> {
        match self {
            Obj::Ok(t) => Some(t),
            Obj::Wrong(_) => None,
        }
    }
}

struct ObjVisitor<T>(PhantomData<T>);

/// Implements the non-object visits of a visitor that only wants one container kind: each
/// returns `$wrong(kind)` after skipping the value.
macro_rules! wrong_kinds {
    ($wrong:path) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($wrong(JsonKind::Null))
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok($wrong(JsonKind::Null))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($wrong(JsonKind::Bool))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($wrong(JsonKind::Number))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($wrong(JsonKind::Number))
        }
        fn visit_i128<E>(self, _: i128) -> Result<Self::Value, E> {
            Ok($wrong(JsonKind::Number))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($wrong(JsonKind::Number))
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($wrong(JsonKind::String))
        }
    };
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = Obj<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    wrong_kinds!(Obj::Wrong);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Obj::Wrong(JsonKind::Array))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Obj::Ok)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjVisitor(PhantomData))
    }
}

/// An array of objects read as `T` (each element on its own, so one element of a wrong kind
/// does not hide the others), or the kind of value found instead of an array.
#[derive(Clone, Debug, PartialEq)]
pub enum Arr<T> {
    /// An array; its elements in order.
    Ok(Vec<Obj<T>>),
    /// Something else than an array was found (its contents are skipped).
    Wrong(JsonKind),
}

impl<T> Arr<T> {
    /// The elements, empty when this was not an array.
    pub fn items(&self) -> &[Obj<T>] {
        match self {
            Arr::Ok(items) => items,
            Arr::Wrong(_) => &[],
        }
    }
}

struct ArrVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ArrVisitor<T> {
    type Value = Arr<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    wrong_kinds!(Arr::Wrong);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The size hint is untrusted (and serde_json gives none). Each element read takes one
        // unit of the item budget; past it, elements are skipped unread and the budget notes
        // the overflow, so a body of a million `{}` cannot make a million structs.
        let mut items = Vec::new();
        loop {
            if take_item() {
                match seq.next_element::<Obj<T>>()? {
                    Some(item) => items.push(item),
                    None => {
                        give_back_item();
                        break;
                    }
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            } else {
                ITEM_BUDGET.with(|b| b.exceeded.set(true));
            }
        }
        Ok(Arr::Ok(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Arr::Wrong(JsonKind::Object))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Arr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ArrVisitor(PhantomData))
    }
}

/// How many array elements the payload types may still read on this thread, and whether
/// some were skipped for lack of budget. Unlimited unless [`with_item_budget`] is running.
struct ItemBudget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
}

thread_local! {
    static ITEM_BUDGET: ItemBudget = const {
        ItemBudget { left: Cell::new(usize::MAX), exceeded: Cell::new(false) }
    };
}

fn take_item() -> bool {
    ITEM_BUDGET.with(|b| match b.left.get() {
        0 => false,
        n => {
            b.left.set(n - 1);
            true
        }
    })
}

fn give_back_item() {
    ITEM_BUDGET.with(|b| b.left.set(b.left.get().saturating_add(1)));
}

/// Runs `f` (a deserialization) with at most `budget` array elements read into the payload
/// types; returns its result and whether elements were skipped for lack of budget. The budget
/// is unlimited again afterwards, even if `f` panics.
pub(crate) fn with_item_budget<R>(budget: usize, f: impl FnOnce() -> R) -> (R, bool) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ITEM_BUDGET.with(|b| {
                b.left.set(usize::MAX);
                b.exceeded.set(false);
            });
        }
    }
    ITEM_BUDGET.with(|b| {
        b.left.set(budget);
        b.exceeded.set(false);
    });
    let _reset = Reset;
    let result = f();
    let exceeded = ITEM_BUDGET.with(|b| b.exceeded.get());
    (result, exceeded)
}

/// An object key, borrowed when unescaped.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Declares a payload struct whose fields are all optional and lenient, with a hand-written
/// `Deserialize` that skips unknown keys and lets a repeated key keep its last value. Only JSON
/// syntax errors can make it fail.
macro_rules! lenient_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<$lt:lifetime> {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        #[non_exhaustive]
        pub struct $name<$lt> {
            $( $(#[$fmeta])* pub $field: Option<$ty>, )*
        }

        impl<$lt> serde::Deserialize<$lt> for $name<$lt> {
            fn deserialize<D: serde::Deserializer<$lt>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<$lt> serde::de::Visitor<$lt> for V {
                    type Value = $name<$lt>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<$lt>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<$crate::lenient::Key<$lt>>()? {
                            match &*key.0 {
                                $( $key => out.$field = Some(map.next_value()?), )*
                                _ => { map.next_value::<serde::de::IgnoredAny>()?; }
                            }
                        }
                        Ok(out)
                    }
                }
                deserializer.deserialize_map(V)
            }
        }
    };
}
pub(crate) use lenient_struct;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_from_numbers_and_digit_strings() {
        assert_eq!(Value::Int(5).as_integer(), Some(5));
        assert_eq!(
            Value::Str("1749416383".into()).as_integer(),
            Some(1_749_416_383)
        );
        assert_eq!(Value::Str("-3".into()).as_integer(), Some(-3));
        assert_eq!(
            Value::Str("-9223372036854775808".into()).as_integer(),
            Some(i64::MIN)
        );
        for bad in [
            "",
            "-",
            "1.5",
            " 1",
            "1e3",
            "+1",
            "9223372036854775808",
            &"9".repeat(31),
        ] {
            assert_eq!(Value::Str(bad.into()).as_integer(), None, "{bad}");
        }
        assert_eq!(Value::Float(1.0).as_integer(), None);
    }

    #[test]
    fn the_item_budget_caps_elements_read_and_resets() {
        let body = "[{},{},{},{}]";
        let (arr, exceeded) = with_item_budget(4, || {
            serde_json::from_str::<Arr<crate::payload::Text<'_>>>(body)
        });
        assert_eq!(arr.unwrap().items().len(), 4);
        assert!(!exceeded);
        let (arr, exceeded) = with_item_budget(3, || {
            serde_json::from_str::<Arr<crate::payload::Text<'_>>>(body)
        });
        assert_eq!(arr.unwrap().items().len(), 3);
        assert!(exceeded);
        // Unlimited again afterwards.
        let arr: Arr<crate::payload::Text<'_>> = serde_json::from_str(body).unwrap();
        assert_eq!(arr.items().len(), 4);
    }

    #[test]
    fn values_of_any_kind_are_read() {
        let v: Vec<Value> =
            serde_json::from_str(r#"[null,true,1,-1.5,"a\"b",[1,[2]],{"a":{}}]"#).unwrap();
        let kinds: Vec<JsonKind> = v.iter().map(Value::kind).collect();
        use JsonKind::*;
        assert_eq!(kinds, [Null, Bool, Number, Number, String, Array, Object]);
        assert_eq!(v[4].as_str(), Some("a\"b"));
    }
}
