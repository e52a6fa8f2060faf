//! Reading a definition's structs through serde (the general path), for generated code.
//!
//! serde's derived `Deserialize` reads a struct from a map by name and from a sequence by
//! position: a JSON array in place of an object (or an object in place of a positional struct's
//! array) would be taken for it. A definition's struct has one shape, so generated structs write
//! their `Deserialize` out instead. [`deserialize_object`] asks the deserializer for a map
//! (serde_json refuses anything else, naming what it expected) and the generated [`FromMap`]
//! reads its keys, with [`field`] and [`required`] giving serde's own errors for a repeated or a
//! missing field; [`deserialize_positional`] asks for a sequence, which the generated
//! [`FromSeq`] reads element by element ([`element`], [`end`]).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A struct read from the keys of a JSON object (generated).
pub trait FromMap<'de>: Sized {
    /// What the struct is, for errors: `struct Name`.
    const EXPECTING: &'static str;

    /// Reads the struct from the object's keys and values.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// `T` from an object, and from nothing else.
pub fn deserialize_object<'de, T: FromMap<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(ObjectVisitor(PhantomData))
}

struct ObjectVisitor<T>(PhantomData<fn() -> T>);

impl<'de, T: FromMap<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

/// Reads the value of the field `key` into `slot`; a field given twice is an error.
pub fn field<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
    key: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// The value of a required field, or the error that it is missing.
pub fn required<T, E: de::Error>(slot: Option<T>, key: &'static str) -> Result<T, E> {
    slot.ok_or_else(|| E::missing_field(key))
}

/// The error for a key the struct does not have, in a protocol that refuses such keys.
pub fn unknown<E: de::Error>(key: &str, fields: &'static [&'static str]) -> Result<(), E> {
    Err(E::unknown_field(key, fields))
}

/// Skips the value of a key the struct does not have.
pub fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(drop)
}

/// The value of a tagged union, read as an object and nothing else, for the union's derived
/// reader to take apart (serde's internally tagged enums would also take an array, its tag
/// first). A key given twice is an error, as it is for a struct.
pub fn object_value<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<serde_json::Value, D::Error> {
    struct ObjectValue;
    impl<'de> Visitor<'de> for ObjectValue {
        type Value = serde_json::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut object = serde_json::Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if object.contains_key(&key) {
                    return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                }
                let value = map.next_value()?;
                object.insert(key, value);
            }
            Ok(serde_json::Value::Object(object))
        }
    }
    deserializer.deserialize_map(ObjectValue)
}

/// A struct read from the elements of a JSON array, in order (generated).
pub trait FromSeq<'de>: Sized {
    /// What the struct is, for errors: `struct Name as an array of N elements`.
    const EXPECTING: &'static str;

    /// Reads the struct from the array's elements.
    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error>;
}

/// `T` from an array, and from nothing else.
pub fn deserialize_positional<'de, T: FromSeq<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_seq(SeqVisitor(PhantomData))
}

struct SeqVisitor<T>(PhantomData<fn() -> T>);

impl<'de, T: FromSeq<'de>> Visitor<'de> for SeqVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq)
    }
}

/// The required element at `index`, or the error that the array is too short.
pub fn element<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
    seq: &mut A,
    index: usize,
    expecting: &'static str,
) -> Result<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| de::Error::invalid_length(index, &expecting))
}

/// The end of an array of at most `count` elements: one more is an error.
pub fn end<'de, A: SeqAccess<'de>>(
    seq: &mut A,
    count: usize,
    expecting: &'static str,
) -> Result<(), A::Error> {
    match seq.next_element::<IgnoredAny>()? {
        None => Ok(()),
        Some(_) => Err(de::Error::invalid_length(count + 1, &expecting)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Point {
        x: i64,
        y: Option<i64>,
    }

    impl<'de> FromMap<'de> for Point {
        const EXPECTING: &'static str = "struct Point";

        fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
            let (mut x, mut y) = (None, None);
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "x" => field(&mut x, &mut map, "x")?,
                    "y" => field(&mut y, &mut map, "y")?,
                    _ => skip(&mut map)?,
                }
            }
            Ok(Point {
                x: required(x, "x")?,
                y: y.flatten(),
            })
        }
    }

    impl<'de> Deserialize<'de> for Point {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserialize_object(deserializer)
        }
    }

    #[derive(Debug, PartialEq)]
    struct Pair(i64, Option<String>);

    impl<'de> FromSeq<'de> for Pair {
        const EXPECTING: &'static str = "struct Pair as an array of 1 to 2 elements";

        fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
            let first = element(&mut seq, 0, Self::EXPECTING)?;
            let second = seq.next_element::<Option<String>>()?.flatten();
            end(&mut seq, 2, Self::EXPECTING)?;
            Ok(Pair(first, second))
        }
    }

    impl<'de> Deserialize<'de> for Pair {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserialize_positional(deserializer)
        }
    }

    fn pair(text: &str) -> Result<Pair, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_array_is_read_by_position() {
        assert_eq!(pair(r#"[1, "a"]"#), Ok(Pair(1, Some("a".into()))));
        assert_eq!(pair("[1]"), Ok(Pair(1, None)));
        assert_eq!(pair("[1, null]"), Ok(Pair(1, None)));
    }

    #[test]
    fn an_object_is_not_an_array_and_the_length_counts() {
        let error = pair(r#"{"0": 1}"#).expect_err("an object is refused");
        assert!(
            error.contains("expected struct Pair as an array"),
            "{error}"
        );
        let error = pair("[]").expect_err("too short");
        assert!(error.contains("invalid length 0"), "{error}");
        let error = pair(r#"[1, "a", 3]"#).expect_err("too long");
        assert!(error.contains("invalid length 3"), "{error}");
    }

    fn read(text: &str) -> Result<Point, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_object_is_read_by_its_keys() {
        assert_eq!(
            read(r#"{"y":2,"z":[1],"x":1}"#),
            Ok(Point { x: 1, y: Some(2) })
        );
        assert_eq!(read(r#"{"x":1}"#), Ok(Point { x: 1, y: None }));
    }

    #[test]
    fn an_array_is_not_an_object() {
        let error = read("[1,2]").expect_err("an array is refused");
        assert!(error.contains("expected struct Point"), "{error}");
    }

    #[test]
    fn a_union_value_is_an_object() {
        let read = |text: &str| object_value(&mut serde_json::Deserializer::from_str(text));
        let value = read(r#"{"kind":"circle","r":1}"#).expect("an object");
        assert_eq!(value["kind"], "circle");
        let error = read(r#"["circle",1]"#).expect_err("an array").to_string();
        assert!(error.contains("expected an object"), "{error}");
        let error = read(r#"{"r":1,"r":2}"#)
            .expect_err("a repeated key")
            .to_string();
        assert!(error.contains("duplicate field `r`"), "{error}");
    }

    #[test]
    fn repeated_and_missing_fields_are_refused() {
        let error = read(r#"{"x":1,"x":2}"#).expect_err("a repeated field");
        assert!(error.contains("duplicate field `x`"), "{error}");
        let error = read(r#"{"y":1}"#).expect_err("a missing field");
        assert!(error.contains("missing field `x`"), "{error}");
    }
}
