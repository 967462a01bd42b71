//! Typed, borrowing reads of provider JSON that accept exactly what `serde_json::Value` accepts
//! and read each field the way the [`crate::convert`] helpers read it from a `Value`.
//!
//! Parsing a webhook into a `Value` tree allocates every key and string and then walks maps by
//! key; these types let an adapter deserialize straight into its own structs instead, borrowing
//! strings from the body, without changing one outcome:
//! - every field type accepts any JSON value: a wrong type gives what the `convert` helper
//!   gives for it (empty text, `None`, no items), never an error;
//! - [`lenient_object!`](crate::lenient_object) structs skip unknown keys with [`Skip`], which
//!   parses them fully (UTF-8, escapes, number range, nesting limit), so a body is refused
//!   exactly when `serde_json::from_slice::<Value>` refuses it; a repeated key keeps its last
//!   value, as a `Value` map does;
//! - the same types deserialize from a parsed `&Value` too (strings still borrowed), so an
//!   adapter can fall back to a `Value` and keep one mapping path.
//!
//! Numbers are the exception that makes the typed read better than a `Value`: [`Num`] and
//! [`Json`] read a number from its JSON text, so digits a double cannot hold are kept (a
//! `Value` has already rounded a fraction through f64). For every number a double holds, they
//! read what the `convert` helpers read from a `Value`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use serde_json::value::RawValue;

use crate::convert::DecimalError;

/// Reads and discards any JSON value, checking it fully (unlike `serde::de::IgnoredAny`, which
/// serde_json skips without checking strings or number ranges).
#[derive(Debug, Clone, Copy, Default)]
pub struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Skip, D::Error> {
        Skip::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// An object key, borrowed unless it holds escapes.
#[derive(Debug, Clone)]
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Implements the visitor methods of a lenient scalar: every JSON type is accepted, objects
/// and arrays are read through (checked) and give `$other`.
macro_rules! drain_containers {
    ($other:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            SkipVisitor.visit_seq(seq)?;
            Ok($other)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            SkipVisitor.visit_map(map)?;
            Ok($other)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

/// Implements the visitor methods for scalars and null of a place that treats them all alike:
/// reads the value and ignores it, or runs `$action` with the visitor as `$this`.
macro_rules! scalars_are {
    (ignored) => {
        scalars_are!(@each _ => {});
    };
    (|$this:ident| $action:expr) => {
        scalars_are!(@each $this => { $action; });
    };
    (@each $this:pat => $body:block) => {
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            let $this = self;
            $body
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            let $this = self;
            $body
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            let $this = self;
            $body
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            let $this = self;
            $body
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            let $this = self;
            $body
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            let $this = self;
            $body
            Ok(())
        }
        fn visit_none<E>(self) -> Result<(), E> {
            let $this = self;
            $body
            Ok(())
        }
    };
}

/// A scalar as `convert::str_at` reads it: a string as is, a number or boolean as its JSON
/// text, anything else (absent, null, object, array) empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    /// The text (empty when the field was absent or not a scalar).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An owned copy, for a message field.
    pub fn to_string_owned(&self) -> String {
        self.0.clone().into_owned()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn number_text(n: Number) -> String {
    n.to_string()
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(if b { "true" } else { "false" })))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(number_text(Number::from(i)))))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(number_text(Number::from(u)))))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(
                    Number::from_f64(f).map(number_text).unwrap_or_default(),
                )))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
                Text::deserialize(d)
            }
            drain_containers!(Text::default());
        }
        deserializer.deserialize_any(V)
    }
}

/// A string and only a string (`Value::as_str`): what dates and instants are read from.
/// Anything else is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Str<'a>(pub Option<Cow<'a, str>>);

impl Str<'_> {
    /// The string, if the field was one.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Some(Cow::Owned(s))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Str<'de>, D::Error> {
                Str::deserialize(d)
            }
            drain_containers!(Str(None));
        }
        deserializer.deserialize_any(V)
    }
}

/// A decimal read exactly from the number's JSON text (or a numeric string's), as
/// [`crate::convert::parse_decimal`] reads it: never through f64. `None` for anything that is
/// not a number (absent, null, other types); `Some(Err(_))` for a number the canonical decimal
/// types cannot hold (which the adapter dead-letters, never rounds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Num(pub Option<Result<(i64, i32), DecimalError>>);

impl Num {
    /// The value: `Ok(None)` when there is no number, the error when it does not fit.
    pub fn get(self) -> Result<Option<(i64, i32)>, DecimalError> {
        self.0.transpose()
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The value's text: borrowed from the body when read from it, made from a `Value`
        // otherwise (where a fraction has already been through f64).
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        Ok(Num(match text.as_bytes().first() {
            Some(b'-' | b'0'..=b'9') => {
                // Refused as a `Value` refuses it, so the typed read fails when that does.
                if !text.parse::<f64>().is_ok_and(f64::is_finite) {
                    return Err(serde::de::Error::custom("number out of range"));
                }
                crate::convert::parse_decimal(text).transpose()
            }
            Some(b'"') => {
                let s: Cow<'_, str> =
                    serde_json::from_str(text).map_err(serde::de::Error::custom)?;
                crate::convert::parse_decimal(&s).transpose()
            }
            Some(b'{' | b'[') => {
                // Checked as fully as any skipped value.
                serde_json::from_str::<Skip>(text).map_err(serde::de::Error::custom)?;
                None
            }
            _ => None,
        }))
    }
}

/// A subtree kept as its JSON text (partner metadata), so numbers keep every digit; `None`
/// when absent. Convert it with [`Json::to_struct`].
#[derive(Debug, Clone, Default)]
pub struct Json(pub Option<Box<RawValue>>);

impl Json {
    /// The text, when present (`"null"` for an explicit null).
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref().map(RawValue::get)
    }

    /// An object as a protobuf `Struct` ([`crate::convert::struct_from_json`]); `None` for
    /// anything else.
    pub fn to_struct(&self) -> Option<crate::model::well_known::Struct> {
        self.get().and_then(crate::convert::struct_from_json)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        // Checked as fully as a `Value` would be (escapes, number range).
        serde_json::from_str::<Skip>(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(Json(Some(raw)))
    }
}

/// A boolean (`Value::as_bool`); `None` for anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub Option<bool>);

impl Flag {
    /// The boolean, false when absent or not a boolean (`convert::bool_at`).
    pub fn is_true(self) -> bool {
        self.0.unwrap_or(false)
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Flag, E> {
                Ok(Flag(Some(b)))
            }
            fn visit_str<E>(self, _: &str) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Flag, D::Error> {
                Flag::deserialize(d)
            }
            drain_containers!(Flag(None));
        }
        deserializer.deserialize_any(V)
    }
}

/// An integer (`Value::as_i64`: no floats, nothing past `i64::MAX`); `None` for anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Int(pub Option<i64>);

impl Int {
    /// The integer, 0 when absent or not one (`convert::i64_at`).
    pub fn or_zero(self) -> i64 {
        self.0.unwrap_or(0)
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Int, E> {
                Ok(Int(Some(i)))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Int, E> {
                Ok(Int(i64::try_from(u).ok()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Int, D::Error> {
                Int::deserialize(d)
            }
            drain_containers!(Int(None));
        }
        deserializer.deserialize_any(V)
    }
}

/// The strings of an array as `convert::strings_at` reads them: strings as is, numbers as their
/// JSON text, other items skipped; empty when not an array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strings<'a>(pub Vec<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Strings<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Strings<'de>, E> {
                Ok(Strings::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Strings<'de>, E> {
                Ok(Strings::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Strings<'de>, E> {
                Ok(Strings::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Strings<'de>, E> {
                Ok(Strings::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Strings<'de>, E> {
                Ok(Strings::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strings<'de>, D::Error> {
                Strings::deserialize(d)
            }
            fn visit_unit<E>(self) -> Result<Strings<'de>, E> {
                Ok(Strings::default())
            }
            fn visit_none<E>(self) -> Result<Strings<'de>, E> {
                Ok(Strings::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Strings<'de>, A::Error> {
                SkipVisitor.visit_map(map)?;
                Ok(Strings::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings<'de>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<StringItem<'de>>()? {
                    if let Some(text) = item.0 {
                        items.push(text);
                    }
                }
                Ok(Strings(items))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// One item of [`Strings`]: a string or a number's text; `None` otherwise.
struct StringItem<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for StringItem<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringItem<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<StringItem<'de>, E> {
                Ok(StringItem(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<StringItem<'de>, E> {
                Ok(StringItem(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E>(self, s: String) -> Result<StringItem<'de>, E> {
                Ok(StringItem(Some(Cow::Owned(s))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<StringItem<'de>, E> {
                Ok(StringItem(None))
            }
            fn visit_i64<E>(self, i: i64) -> Result<StringItem<'de>, E> {
                Ok(StringItem(Some(Cow::Owned(number_text(Number::from(i))))))
            }
            fn visit_u64<E>(self, u: u64) -> Result<StringItem<'de>, E> {
                Ok(StringItem(Some(Cow::Owned(number_text(Number::from(u))))))
            }
            fn visit_f64<E>(self, f: f64) -> Result<StringItem<'de>, E> {
                Ok(StringItem(
                    Number::from_f64(f).map(|n| Cow::Owned(number_text(n))),
                ))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StringItem<'de>, D::Error> {
                StringItem::deserialize(d)
            }
            drain_containers!(StringItem(None));
        }
        deserializer.deserialize_any(V)
    }
}

/// A field type that can be read into a value that already exists, so that structs of many
/// fields are filled where they live instead of being built and moved through every layer of
/// the parser (profiles showed those moves as ~5% of a statement normalize).
pub trait Place<'de>: Sized {
    /// Reads `deserializer` into `place`, replacing what it held.
    fn read_into<D: Deserializer<'de>>(deserializer: D, place: &mut Self) -> Result<(), D::Error>;
}

/// Scalars and subtrees are small: read, then assigned.
macro_rules! place_by_value {
    ($($ty:ty),* $(,)?) => {
        $(
            impl<'de> Place<'de> for $ty {
                fn read_into<D: Deserializer<'de>>(
                    deserializer: D,
                    place: &mut Self,
                ) -> Result<(), D::Error> {
                    *place = <$ty>::deserialize(deserializer)?;
                    Ok(())
                }
            }
        )*
    };
}

place_by_value!(
    Skip,
    Text<'de>,
    Str<'de>,
    Num,
    Json,
    Flag,
    Int,
    Strings<'de>,
    serde_json::Value
);

/// The seed that reads a value into `self.0` ([`Place`]).
pub struct InPlace<'p, T>(pub &'p mut T);

impl<'de, T: Place<'de>> DeserializeSeed<'de> for InPlace<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        T::read_into(deserializer, self.0)
    }
}

/// A struct read key by key from a JSON object, in place (made by
/// [`lenient_object!`](crate::lenient_object)).
pub trait LenientObject<'de>: Default {
    /// Reads the object's entries into `self`: known keys into their fields (a repeated key
    /// replaces the earlier value), unknown keys checked and skipped.
    fn fill<A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error>;
}

impl<'de, T: LenientObject<'de>> LenientObject<'de> for Box<T> {
    fn fill<A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error> {
        (**self).fill(map)
    }
}

/// A JSON object read as `T`; `None` for any other value (`Value::is_object` filters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: LenientObject<'de>> Place<'de> for Obj<T> {
    fn read_into<D: Deserializer<'de>>(deserializer: D, place: &mut Self) -> Result<(), D::Error> {
        struct V<'p, T>(&'p mut Obj<T>);
        impl<'de, T: LenientObject<'de>> Visitor<'de> for V<'_, T> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
                self.0.0.insert(T::default()).fill(map)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
                SkipVisitor.visit_seq(seq)?;
                self.0.0 = None;
                Ok(())
            }
            scalars_are!(|this| this.0.0 = None);
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                Obj::read_into(d, self.0)
            }
        }
        deserializer.deserialize_any(V(place))
    }
}

impl<'de, T: LenientObject<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Obj(None);
        Obj::read_into(deserializer, &mut out)?;
        Ok(out)
    }
}

/// The objects of an array, each read as `T`; other items skipped, empty when not an array
/// (`as_array()` then `filter(is_object)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objects<T>(pub Vec<T>);

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// One item of [`Objects`]: an object is pushed and filled in place, anything else skipped.
struct Element<'p, T>(&'p mut Vec<T>);

impl<'de, T: LenientObject<'de>> DeserializeSeed<'de> for Element<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        struct V<'p, T>(&'p mut Vec<T>);
        impl<'de, T: LenientObject<'de>> Visitor<'de> for V<'_, T> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
                self.0.push(T::default());
                match self.0.last_mut() {
                    Some(item) => item.fill(map),
                    None => Ok(()),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
                SkipVisitor.visit_seq(seq).map(drop)
            }
            scalars_are!(ignored);
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                Element(self.0).deserialize(d)
            }
        }
        deserializer.deserialize_any(V(self.0))
    }
}

impl<'de, T: LenientObject<'de>> Place<'de> for Objects<T> {
    fn read_into<D: Deserializer<'de>>(deserializer: D, place: &mut Self) -> Result<(), D::Error> {
        struct V<'p, T>(&'p mut Vec<T>);
        impl<'de, T: LenientObject<'de>> Visitor<'de> for V<'_, T> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                while seq.next_element_seed(Element(&mut *self.0))?.is_some() {}
                Ok(())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
                SkipVisitor.visit_map(map).map(drop)
            }
            scalars_are!(ignored);
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                let mut inner = Objects(std::mem::take(self.0));
                Objects::read_into(d, &mut inner)?;
                *self.0 = inner.0;
                Ok(())
            }
        }
        // A repeated key replaces the earlier array.
        place.0.clear();
        deserializer.deserialize_any(V(&mut place.0))
    }
}

impl<'de, T: LenientObject<'de>> Deserialize<'de> for Objects<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Objects(Vec::new());
        Objects::read_into(deserializer, &mut out)?;
        Ok(out)
    }
}

/// An id as providers send it, a string or a number (`convert::strings_at` items): a string as
/// is, a number as its JSON text, anything else (booleans too) empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Id<'a>(pub Cow<'a, str>);

impl Id<'_> {
    /// The id (empty when the field was absent, or neither a string nor a number).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Id<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let item = StringItem::deserialize(deserializer)?;
        Ok(Id(item.0.unwrap_or_default()))
    }
}

place_by_value!(Id<'de>);

/// Objects none of whose keys are wanted, so that [`Item<Skip>`](Item) keeps scalars only.
impl<'de> LenientObject<'de> for Skip {
    fn fill<A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error> {
        SkipVisitor.visit_map(map).map(drop)
    }
}

/// Any JSON value told apart by its kind, as a `match` on a `Value` tells it: objects read as
/// `T`, arrays as items of the same kind, strings borrowed. For fields and array items that
/// providers send in more than one shape (an account object or a bare id; one object or an
/// array of them), where what the adapter does depends on the shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Item<'a, T> {
    /// The key was not there (a field that was never read).
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, as a `Value` holds it.
    Number(Number),
    /// A string.
    Str(Cow<'a, str>),
    /// An array, every item read.
    Array(Vec<Item<'a, T>>),
    /// An object, read as `T`.
    Object(T),
}

impl<T> Item<'_, T> {
    /// The object, if the value was one.
    pub fn as_object(&self) -> Option<&T> {
        match self {
            Self::Object(object) => Some(object),
            _ => None,
        }
    }

    /// The items, if the value was an array.
    pub fn as_array(&self) -> Option<&[Self]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// One item of an [`Item::Array`]: pushed, then filled in place.
struct ItemElement<'p, 'a, T>(&'p mut Vec<Item<'a, T>>);

impl<'de, T: LenientObject<'de>> DeserializeSeed<'de> for ItemElement<'_, 'de, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.0.push(Item::Absent);
        match self.0.last_mut() {
            Some(item) => Item::read_into(deserializer, item),
            None => Ok(()),
        }
    }
}

impl<'de, T: LenientObject<'de>> Place<'de> for Item<'de, T> {
    fn read_into<D: Deserializer<'de>>(deserializer: D, place: &mut Self) -> Result<(), D::Error> {
        struct V<'p, 'a, T>(&'p mut Item<'a, T>);
        impl<'de, T: LenientObject<'de>> Visitor<'de> for V<'_, 'de, T> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
                *self.0 = Item::Object(T::default());
                match self.0 {
                    Item::Object(object) => object.fill(map),
                    _ => Ok(()),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                let mut items = Vec::new();
                while seq.next_element_seed(ItemElement(&mut items))?.is_some() {}
                *self.0 = Item::Array(items);
                Ok(())
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
                *self.0 = Item::Str(Cow::Borrowed(s));
                Ok(())
            }
            fn visit_str<E>(self, s: &str) -> Result<(), E> {
                *self.0 = Item::Str(Cow::Owned(s.to_owned()));
                Ok(())
            }
            fn visit_string<E>(self, s: String) -> Result<(), E> {
                *self.0 = Item::Str(Cow::Owned(s));
                Ok(())
            }
            fn visit_bool<E>(self, b: bool) -> Result<(), E> {
                *self.0 = Item::Bool(b);
                Ok(())
            }
            fn visit_i64<E>(self, i: i64) -> Result<(), E> {
                *self.0 = Item::Number(Number::from(i));
                Ok(())
            }
            fn visit_u64<E>(self, u: u64) -> Result<(), E> {
                *self.0 = Item::Number(Number::from(u));
                Ok(())
            }
            fn visit_f64<E>(self, f: f64) -> Result<(), E> {
                // As a `Value`: a float no `Number` can hold is null.
                *self.0 = Number::from_f64(f).map_or(Item::Null, Item::Number);
                Ok(())
            }
            fn visit_unit<E>(self) -> Result<(), E> {
                *self.0 = Item::Null;
                Ok(())
            }
            fn visit_none<E>(self) -> Result<(), E> {
                *self.0 = Item::Null;
                Ok(())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                Item::read_into(d, self.0)
            }
        }
        deserializer.deserialize_any(V(place))
    }
}

impl<'de, T: LenientObject<'de>> Deserialize<'de> for Item<'de, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Item::Absent;
        Item::read_into(deserializer, &mut out)?;
        Ok(out)
    }
}

/// Reads a whole body straight into `T`; `None` when it is not UTF-8 or does not parse, and
/// only then: the lenient types accept what `serde_json::from_slice::<Value>` accepts, so a
/// caller parses a `Value` on `None` to report the exact error (or, should the two ever
/// disagree, to read `T` from it). Checking UTF-8 once up front lets the parser borrow strings
/// without checking each one.
pub fn from_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// Declares a struct read from a JSON object by key, every field lenient (use the types of
/// this module, `serde_json::Value` for a subtree kept whole, or another `lenient_object!`
/// struct inside [`Obj`]/[`Objects`]). Unknown keys are checked and skipped ([`Skip`]); a
/// repeated key keeps its last value. The struct has one lifetime, the input's; its fields are
/// filled in place ([`LenientObject`]).
///
/// ```ignore
/// lenient_object! {
///     /// A provider's `data`.
///     pub struct Data<'a> {
///         "id" => id: Text<'a>,
///         "amountDue" => amount_due: Num,
///     }
/// }
/// ```
#[macro_export]
macro_rules! lenient_object {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident<$lt:lifetime> {
            $( $key:literal => $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name<$lt> {
            $( #[doc = concat!("`", $key, "`")] pub $field: $ty, )*
            #[doc(hidden)]
            pub _input: ::std::marker::PhantomData<&$lt str>,
        }

        impl<$lt> $crate::lenient::LenientObject<$lt> for $name<$lt> {
            fn fill<A>(&mut self, mut map: A) -> ::std::result::Result<(), A::Error>
            where
                A: $crate::lenient::serde::de::MapAccess<$lt>,
            {
                while let Some(key) = map.next_key::<$crate::lenient::Key<$lt>>()? {
                    match &*key.0 {
                        $( $key => map.next_value_seed($crate::lenient::InPlace(&mut self.$field))?, )*
                        _ => {
                            map.next_value::<$crate::lenient::Skip>()?;
                        }
                    }
                }
                Ok(())
            }
        }

        impl<$lt> $crate::lenient::serde::Deserialize<$lt> for $name<$lt> {
            fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
            where
                D: $crate::lenient::serde::Deserializer<$lt>,
            {
                struct ObjectVisitor;
                impl<$lt> $crate::lenient::serde::de::Visitor<$lt> for ObjectVisitor {
                    type Value = $name<$lt>;
                    fn expecting(
                        &self,
                        f: &mut ::std::fmt::Formatter<'_>,
                    ) -> ::std::fmt::Result {
                        f.write_str(concat!("a JSON object (", stringify!($name), ")"))
                    }
                    fn visit_map<A>(self, map: A) -> ::std::result::Result<Self::Value, A::Error>
                    where
                        A: $crate::lenient::serde::de::MapAccess<$lt>,
                    {
                        let mut out = $name::default();
                        $crate::lenient::LenientObject::fill(&mut out, map)?;
                        Ok(out)
                    }
                }
                deserializer.deserialize_map(ObjectVisitor)
            }
        }
    };
}

#[doc(hidden)]
pub use serde;

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::convert;

    lenient_object! {
        /// Every lenient type once, under the keys the `convert` helpers are asked for.
        struct Probe<'a> {
            "text" => text: Text<'a>,
            "str" => str: Str<'a>,
            "num" => num: Num,
            "flag" => flag: Flag,
            "int" => int: Int,
            "strings" => strings: Strings<'a>,
            "obj" => obj: Obj<Inner<'a>>,
            "objects" => objects: Objects<Inner<'a>>,
            "tree" => tree: Value,
        }
    }

    lenient_object! {
        struct Inner<'a> {
            "id" => id: Text<'a>,
        }
    }

    /// Values of every JSON type and the shapes that matter (escapes, big and odd numbers).
    fn samples() -> Vec<Value> {
        vec![
            Value::Null,
            json!(true),
            json!(false),
            json!(0),
            json!(-3),
            json!(9_223_372_036_854_775_807_i64),
            json!(18_446_744_073_709_551_615_u64),
            json!(94.99),
            json!(-0.5),
            json!(1e300),
            json!(""),
            json!("plain"),
            json!(" 12.5 "),
            json!("tab\tquote\"é"),
            json!("2023-08-02"),
            json!("2024-02-21T00:00:00.000+00:00"),
            json!([]),
            json!(["a", 1, 2.5, null, true, {"id": "x"}, ["y"]]),
            json!({}),
            json!({"id": "crd_1", "other": [1]}),
            json!({"id": 7}),
            json!([{"id": "a"}, 1, {"id": "b"}, null]),
        ]
    }

    /// What the `convert` helpers read from `object`, for comparison.
    #[allow(clippy::type_complexity)]
    fn expected(
        object: &Value,
    ) -> (
        String,
        Option<String>,
        Option<Result<(i64, i32), convert::DecimalError>>,
        bool,
        i64,
    ) {
        (
            convert::str_at(object, "text"),
            object["str"].as_str().map(str::to_owned),
            object
                .get("num")
                .map_or(Ok(None), convert::decimal)
                .transpose(),
            convert::bool_at(object, "flag"),
            convert::i64_at(object, "int"),
        )
    }

    fn check(probe: &Probe<'_>, object: &Value) {
        let (text, s, num, flag, int) = expected(object);
        assert_eq!(probe.text.as_str(), text, "{object}");
        assert_eq!(probe.str.get().map(str::to_owned), s, "{object}");
        assert_eq!(probe.num.0, num, "{object}");
        assert_eq!(probe.flag.is_true(), flag, "{object}");
        assert_eq!(probe.flag.0, object["flag"].as_bool(), "{object}");
        assert_eq!(probe.int.or_zero(), int, "{object}");
        let strings: Vec<String> = probe.strings.0.iter().map(|s| s.to_string()).collect();
        assert_eq!(strings, convert::strings_at(object, "strings"), "{object}");
        let obj = object.get("obj").filter(|o| o.is_object());
        assert_eq!(
            probe.obj.0.as_ref().map(|o| o.id.as_str().to_owned()),
            obj.map(|o| convert::str_at(o, "id")),
            "{object}"
        );
        let objects: Vec<String> = object
            .get("objects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|o| o.is_object())
            .map(|o| convert::str_at(o, "id"))
            .collect();
        let read: Vec<String> = probe
            .objects
            .0
            .iter()
            .map(|o| o.id.to_string_owned())
            .collect();
        assert_eq!(read, objects, "{object}");
        assert_eq!(
            probe.tree,
            object.get("tree").cloned().unwrap_or(Value::Null)
        );
    }

    /// Each field type reads every sample as its `convert` helper does, from bytes and from a
    /// parsed `Value`; a wrong type is never an error.
    #[test]
    fn every_type_reads_like_the_convert_helpers() {
        for sample in samples() {
            let object = json!({
                "text": sample, "str": sample, "num": sample, "flag": sample, "int": sample,
                "strings": sample, "obj": sample, "objects": sample, "tree": sample,
                "unknown": sample,
            });
            let text = object.to_string();
            let from_bytes: Probe<'_> = serde_json::from_str(&text).expect("never refused");
            check(&from_bytes, &object);
            let from_value = Probe::deserialize(&object).expect("never refused");
            check(&from_value, &object);
        }
    }

    /// A repeated key keeps its last value, as in a `Value`; escaped keys match.
    #[test]
    fn repeated_and_escaped_keys_read_like_a_value() {
        let text = r#"{"text": "first", "te\u0078t": "second", "num": 1, "num": "x"}"#;
        let probe: Probe<'_> = serde_json::from_str(text).expect("parses");
        assert_eq!(probe.text.as_str(), "second");
        assert_eq!(probe.num.0, None);
        // Objects and arrays filled in place are replaced whole, not merged.
        let text = r#"{"obj": {"id": "a"}, "obj": 5, "objects": [{"id": "a"}],
            "objects": [{"id": "b"}, 3], "strings": ["x"], "strings": {}}"#;
        let probe: Probe<'_> = serde_json::from_str(text).expect("parses");
        assert!(probe.obj.0.is_none());
        let ids: Vec<&str> = probe.objects.0.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["b"]);
        assert!(probe.strings.0.is_empty());
        let text = r#"{"obj": {"id": "a", "x": 1}, "obj": {"x": 2}}"#;
        let probe: Probe<'_> = serde_json::from_str(text).expect("parses");
        assert_eq!(
            probe.obj.0.map(|o| o.id.to_string_owned()),
            Some(String::new())
        );
    }

    /// What a `Value` refuses, the typed read refuses, also in skipped keys: out-of-range
    /// numbers, bad escapes, lone surrogates, nesting past serde_json's limit.
    #[test]
    fn what_a_value_refuses_is_refused() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let bodies = [
            r#"{"unknown": 1e400}"#.to_owned(),
            r#"{"unknown": "\q"}"#.to_owned(),
            r#"{"unknown": "\ud800"}"#.to_owned(),
            r#"{"unknown": {"a": [1, 2,]}}"#.to_owned(),
            format!(r#"{{"unknown": {}}}"#, deep(127)),
            format!(r#"{{"unknown": {}}}"#, deep(128)),
            format!(r#"{{"obj": {{"x": {}}}}}"#, deep(126)),
            format!(r#"{{"obj": {{"x": {}}}}}"#, deep(127)),
            r#"{"text": "a"} x"#.to_owned(),
        ];
        for body in bodies {
            let value = serde_json::from_str::<Value>(&body).is_ok();
            let typed = serde_json::from_str::<Probe<'_>>(&body).is_ok();
            assert_eq!(typed, value, "{body:.60}");
        }
    }

    lenient_object! {
        /// Exact numbers and kept subtrees.
        struct Exact<'a> {
            "amount" => amount: Num,
            "meta" => meta: Json,
        }
    }

    /// Amounts come from the number's text, never through f64; a subtree keeps its text.
    #[test]
    fn numbers_are_read_from_their_text() {
        fn read(body: &str) -> Exact<'_> {
            serde_json::from_str(body).expect("parses")
        }
        let exact = read(r#"{"amount": 12345678901234567.89}"#);
        assert_eq!(
            exact.amount.get(),
            Ok(Some((12_345_678_901_234_567, 890_000_000)))
        );
        assert_eq!(
            read(r#"{"amount": "0.1234567891"}"#).amount.get(),
            Err(convert::DecimalError::TooPrecise)
        );
        assert_eq!(
            read(r#"{"amount": 99999999999999999999}"#).amount.get(),
            Err(convert::DecimalError::TooLarge)
        );
        assert_eq!(read(r#"{"amount": [1.5]}"#).amount.get(), Ok(None));
        assert_eq!(read("{}").amount.get(), Ok(None));
        let meta = read(r#"{"meta": {"id": 12345678901234567890123}}"#).meta;
        assert_eq!(meta.get(), Some(r#"{"id": 12345678901234567890123}"#));
        let converted = meta.to_struct().expect("object");
        assert_eq!(
            converted.fields["id"].kind,
            Some(crate::model::well_known::value::Kind::StringValue(
                "12345678901234567890123".into()
            ))
        );
        for body in [
            r#"{"amount": 1e400}"#,
            r#"{"meta": [1e400]}"#,
            r#"{"meta": "\q"}"#,
        ] {
            assert!(serde_json::from_str::<Value>(body).is_err());
            assert!(serde_json::from_str::<Exact<'_>>(body).is_err(), "{body}");
        }
    }

    lenient_object! {
        /// The shape-keeping types, under keys of their own.
        struct Shapes<'a> {
            "id" => id: Id<'a>,
            "item" => item: Item<'a, Inner<'a>>,
            "scalar" => scalar: Item<'a, Skip>,
        }
    }

    /// How a `match` on a `Value` sees `value` (objects by their `id`, or not at all).
    fn kind_of(value: Option<&Value>, objects: bool) -> String {
        match value {
            None => "absent".into(),
            Some(Value::Null) => "null".into(),
            Some(Value::Bool(b)) => format!("bool {b}"),
            Some(Value::Number(n)) => format!("number {n}"),
            Some(Value::String(s)) => format!("str {s}"),
            Some(Value::Array(items)) => {
                let items: Vec<String> = items.iter().map(|i| kind_of(Some(i), objects)).collect();
                format!("[{}]", items.join(", "))
            }
            Some(object) if objects => format!("object {}", convert::str_at(object, "id")),
            Some(_) => "object".into(),
        }
    }

    /// The same description of what an [`Item`] read.
    fn kind_of_item<T>(item: &Item<'_, T>, id: impl Fn(&T) -> String + Copy) -> String {
        match item {
            Item::Absent => "absent".into(),
            Item::Null => "null".into(),
            Item::Bool(b) => format!("bool {b}"),
            Item::Number(n) => format!("number {n}"),
            Item::Str(s) => format!("str {s}"),
            Item::Array(items) => {
                let items: Vec<String> = items.iter().map(|i| kind_of_item(i, id)).collect();
                format!("[{}]", items.join(", "))
            }
            Item::Object(object) => id(object),
        }
    }

    fn check_shapes(shapes: &Shapes<'_>, object: &Value) {
        let id = match object.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        assert_eq!(shapes.id.as_str(), id, "{object}");
        let item = kind_of_item(&shapes.item, |o| format!("object {}", o.id.as_str()));
        assert_eq!(item, kind_of(object.get("item"), true), "{object}");
        let scalar = kind_of_item(&shapes.scalar, |_| "object".into());
        assert_eq!(scalar, kind_of(object.get("scalar"), false), "{object}");
    }

    /// `Id` reads what `strings_at` keeps of an item; `Item` tells every kind apart as a
    /// `match` on a `Value` does, absent from null included; from bytes and from a `Value`.
    #[test]
    fn shapes_read_like_a_value() {
        let mut objects = vec![json!({})];
        for sample in samples() {
            objects.push(json!({"id": sample, "item": sample, "scalar": sample}));
        }
        objects.push(json!({"item": [[{"id": "deep"}, 2], {"id": 3}, "s", null]}));
        for object in objects {
            let text = object.to_string();
            let from_bytes: Shapes<'_> = serde_json::from_str(&text).expect("never refused");
            check_shapes(&from_bytes, &object);
            let from_value = Shapes::deserialize(&object).expect("never refused");
            check_shapes(&from_value, &object);
        }
        // A repeated key replaces the whole earlier value.
        let text = r#"{"item": {"id": "a"}, "item": [{"id": "b"}], "scalar": {}, "scalar": 1}"#;
        let shapes: Shapes<'_> = serde_json::from_str(text).expect("parses");
        assert_eq!(
            kind_of_item(&shapes.item, |o| format!("object {}", o.id.as_str())),
            "[object b]"
        );
        assert!(matches!(&shapes.scalar, Item::Number(n) if n.as_u64() == Some(1)));
        for body in [r#"{"item": [1e400]}"#, r#"{"scalar": {"a": "\q"}}"#] {
            assert!(serde_json::from_str::<Value>(body).is_err());
            assert!(serde_json::from_str::<Shapes<'_>>(body).is_err(), "{body}");
        }
    }

    /// `from_body` reads a body exactly when `serde_json::from_slice::<Value>` does: trailing
    /// bytes, invalid UTF-8 and a byte-order mark are refused, trailing whitespace is not.
    #[test]
    fn from_body_reads_what_a_value_reads() {
        let bodies: [&[u8]; 7] = [
            b"{\"text\": \"a\"}",
            b" {\"text\": \"a\"} \n",
            b"{\"text\": \"a\"} x",
            b"{\"text\": \"\xff\"}",
            b"\xef\xbb\xbf{}",
            b"[1, {}]",
            b"",
        ];
        for body in bodies {
            let value = serde_json::from_slice::<Value>(body).is_ok();
            assert_eq!(from_body::<Skip>(body).is_some(), value, "{body:?}");
        }
    }
}
