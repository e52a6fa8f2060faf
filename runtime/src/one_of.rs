//! Decoding unions matched by JSON type (`type Channel = string | i64`) in one pass.
//!
//! `#[serde(untagged)]` buffers the whole value, then tries each member in turn on the buffer.
//! A union of the definition language has members told apart by their JSON type, so the type
//! of the value, which the JSON parser knows before reading it, names the member (or the few
//! members, tried in declaration order, when several accept that type, as `i64 | f64` do for
//! an integer). The generated union implements [`OneOf`] with one method per JSON type it
//! accepts, and its `Deserialize` is [`deserialize_one_of`]: no buffer, and an error that says
//! what the union accepts or what is wrong inside the member.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};

/// A union decoded by the JSON type of the value. Every method returns `None` when no member
/// accepts that JSON type, and else the member's own result.
pub trait OneOf<'de>: Sized {
    /// What the union accepts, for errors: `"a string or an integer"`.
    const EXPECTING: &'static str;

    /// A JSON `null`.
    fn from_null<E: de::Error>() -> Option<Result<Self, E>> {
        None
    }
    /// A JSON boolean.
    fn from_bool<E: de::Error>(_: bool) -> Option<Result<Self, E>> {
        None
    }
    /// A JSON integer that fits in `i64`.
    fn from_i64<E: de::Error>(_: i64) -> Option<Result<Self, E>> {
        None
    }
    /// A JSON integer above `i64::MAX`.
    fn from_u64<E: de::Error>(_: u64) -> Option<Result<Self, E>> {
        None
    }
    /// A JSON number with a fraction or an exponent.
    fn from_f64<E: de::Error>(_: f64) -> Option<Result<Self, E>> {
        None
    }
    /// A JSON string.
    fn from_str<E: de::Error>(_: &str) -> Option<Result<Self, E>> {
        None
    }
    /// A JSON array, read by the single member that accepts arrays.
    fn from_seq<A: SeqAccess<'de>>(_: A) -> Option<Result<Self, A::Error>> {
        None
    }
    /// A JSON object, read by the single member that accepts objects.
    fn from_map<A: MapAccess<'de>>(_: A) -> Option<Result<Self, A::Error>> {
        None
    }
}

/// The `Deserialize` of a generated union.
pub fn deserialize_one_of<'de, T: OneOf<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_any(OneOfVisitor(PhantomData))
}

struct OneOfVisitor<T>(PhantomData<fn() -> T>);

impl<T> OneOfVisitor<T> {
    fn refuse<'de, E: de::Error>(&self, unexpected: Unexpected<'_>) -> E
    where
        T: OneOf<'de>,
    {
        E::invalid_type(unexpected, self)
    }
}

impl<'de, T: OneOf<'de>> Visitor<'de> for OneOfVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        T::from_null().unwrap_or_else(|| Err(self.refuse(Unexpected::Unit)))
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        T::from_bool(v).unwrap_or_else(|| Err(self.refuse(Unexpected::Bool(v))))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::from_i64(v).unwrap_or_else(|| Err(self.refuse(Unexpected::Signed(v))))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        // serde_json reports every non-negative integer as `u64`: the members see an `i64`
        // whenever it fits, as they would through `#[serde(untagged)]`'s buffer.
        match i64::try_from(v) {
            Ok(signed) => self.visit_i64(signed),
            Err(_) => T::from_u64(v).unwrap_or_else(|| Err(self.refuse(Unexpected::Unsigned(v)))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        T::from_f64(v).unwrap_or_else(|| Err(self.refuse(Unexpected::Float(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_str(v).unwrap_or_else(|| Err(self.refuse(Unexpected::Str(v))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq).unwrap_or_else(|| Err(self.refuse(Unexpected::Seq)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map).unwrap_or_else(|| Err(self.refuse(Unexpected::Map)))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde::de::value::{I64Deserializer, StrDeserializer};

    use super::*;

    /// `string | i64 | f64`, as the generator writes it.
    #[derive(Debug, PartialEq)]
    enum Union {
        String(String),
        Int(i64),
        Float(f64),
    }

    impl<'de> OneOf<'de> for Union {
        const EXPECTING: &'static str = "a string or a number";
        fn from_str<E: de::Error>(v: &str) -> Option<Result<Self, E>> {
            Some(String::deserialize(StrDeserializer::new(v)).map(Union::String))
        }
        fn from_i64<E: de::Error>(v: i64) -> Option<Result<Self, E>> {
            Some(
                i64::deserialize(I64Deserializer::new(v))
                    .map(Union::Int)
                    .or_else(|_: E| f64::deserialize(I64Deserializer::new(v)).map(Union::Float)),
            )
        }
        fn from_u64<E: de::Error>(v: u64) -> Option<Result<Self, E>> {
            Some(f64::deserialize(de::value::U64Deserializer::new(v)).map(Union::Float))
        }
        fn from_f64<E: de::Error>(v: f64) -> Option<Result<Self, E>> {
            Some(f64::deserialize(de::value::F64Deserializer::new(v)).map(Union::Float))
        }
    }

    impl<'de> Deserialize<'de> for Union {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize_one_of(d)
        }
    }

    #[test]
    fn the_json_type_picks_the_member() {
        let parse = |text: &str| serde_json::from_str::<Union>(text);
        assert_eq!(parse(r#""x""#).ok(), Some(Union::String("x".into())));
        assert_eq!(parse("42").ok(), Some(Union::Int(42)));
        assert_eq!(parse("-1").ok(), Some(Union::Int(-1)));
        assert_eq!(parse("1.5").ok(), Some(Union::Float(1.5)));
        assert_eq!(
            parse("18446744073709551615").ok(),
            Some(Union::Float(18_446_744_073_709_551_615.0))
        );
    }

    #[test]
    fn other_json_types_say_what_the_union_accepts() {
        for text in ["true", "null", "[1]", r#"{"a":1}"#] {
            let error = serde_json::from_str::<Union>(text)
                .err()
                .map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.contains("expected a string or a number")),
                "{text}: {error:?}"
            );
        }
    }
}
