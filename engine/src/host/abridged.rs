//! [`to_abridged_value`]: `abridge(serde_json::to_value(v))` without building what abridging
//! throws away.
//!
//! Every world call is recorded in the transcript abridged ([`super::abridge`]); a CloudWatch
//! series of a day is 1 440 datapoints, of which the transcript keeps six. Building all of them
//! as JSON objects and dropping them again was a tenth of a fleet plan's CPU. This serializer
//! skips the elements in the middle of a long sequence and cuts long strings as it goes; what
//! it does not handle itself (maps, enum variants with data, bytes, the raw-value token) it
//! hands to `serde_json` and abridges afterwards, which is the same by construction.

use serde::Serialize;
use serde::ser;
use serde_json::{Error, Value};

use super::{MAX_ITEMS, abridge, cut};

/// `abridge(serde_json::to_value(v))`, computed directly; `Value::Null` when `v` does not
/// serialize. One difference: an element in the middle of a long sequence is never serialized,
/// so an error it would have raised is not seen.
pub fn to_abridged_value<T: Serialize + ?Sized>(v: &T) -> Value {
    v.serialize(Abridger).unwrap_or(Value::Null)
}

/// The part of `v` `serde_json` builds, then abridged: same result, full cost.
fn whole<T: Serialize + ?Sized>(v: &T) -> Result<Value, Error> {
    serde_json::to_value(v).map(abridge)
}

struct Abridger;

/// The serializer of the subtree `serde_json` handles; abridged when it ends.
struct Whole<S>(S);

/// A sequence: long ones keep only their first and last three elements (`len` is the exact
/// count serde promises when it gives one; without one every element is kept and the array
/// abridged at its end).
struct Seq {
    len: Option<usize>,
    index: usize,
    head: Vec<Value>,
    tail: Vec<Value>,
}

impl Seq {
    fn new(len: Option<usize>) -> Seq {
        Seq {
            len,
            index: 0,
            head: Vec::with_capacity(len.map_or(0, |n| n.min(MAX_ITEMS))),
            tail: Vec::new(),
        }
    }

    fn long(&self) -> Option<usize> {
        self.len.filter(|n| *n > MAX_ITEMS)
    }

    fn push<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let i = self.index;
        self.index += 1;
        match self.long() {
            Some(_) if i < 3 => self.head.push(v.serialize(Abridger)?),
            Some(n) if i >= n.saturating_sub(3) => self.tail.push(v.serialize(Abridger)?),
            Some(_) => {}
            None => self.head.push(v.serialize(Abridger)?),
        }
        Ok(())
    }

    fn finish(self) -> Result<Value, Error> {
        match self.long() {
            Some(n) => {
                debug_assert_eq!(self.index, n, "a sequence's length hint is exact");
                Ok(serde_json::json!({ "items": n, "head": self.head, "tail": self.tail }))
            }
            // Elements are abridged already; only the array itself may be long.
            None if self.head.len() > MAX_ITEMS => {
                let n = self.head.len();
                let mut a = self.head;
                let tail = a.split_off(n - 3);
                a.truncate(3);
                Ok(serde_json::json!({ "items": n, "head": a, "tail": tail }))
            }
            None => Ok(Value::Array(self.head)),
        }
    }
}

/// A struct's fields, each abridged.
struct Struct(serde_json::Map<String, Value>);

impl ser::Serializer for Abridger {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant =
        Whole<<serde_json::value::Serializer as ser::Serializer>::SerializeTupleVariant>;
    type SerializeMap = Whole<<serde_json::value::Serializer as ser::Serializer>::SerializeMap>;
    type SerializeStruct = StructOrWhole;
    type SerializeStructVariant =
        Whole<<serde_json::value::Serializer as ser::Serializer>::SerializeStructVariant>;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_u128(self, v: u128) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        whole(&v)
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Ok(Value::String(cut(v)))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        whole(v)
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, Error> {
        Ok(Value::String(cut(variant)))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        v: &T,
    ) -> Result<Value, Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Value, Error> {
        let mut m = serde_json::Map::new();
        m.insert(variant.to_string(), v.serialize(self)?);
        Ok(Value::Object(m))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Error> {
        Ok(Seq::new(len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, Error> {
        Ok(Seq::new(Some(len)))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq, Error> {
        Ok(Seq::new(Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        ser::Serializer::serialize_tuple_variant(
            serde_json::value::Serializer,
            name,
            index,
            variant,
            len,
        )
        .map(Whole)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        ser::Serializer::serialize_map(serde_json::value::Serializer, len).map(Whole)
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<StructOrWhole, Error> {
        // serde_json's raw values travel as a struct with this name: serde_json's to handle.
        if name.starts_with("$serde_json::") {
            return ser::Serializer::serialize_struct(serde_json::value::Serializer, name, len)
                .map(|s| StructOrWhole::Whole(Whole(s)));
        }
        Ok(StructOrWhole::Struct(Struct(serde_json::Map::new())))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        ser::Serializer::serialize_struct_variant(
            serde_json::value::Serializer,
            name,
            index,
            variant,
            len,
        )
        .map(Whole)
    }
}

impl ser::SerializeSeq for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.push(v)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.push(v)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.push(v)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

enum StructOrWhole {
    Struct(Struct),
    Whole(Whole<<serde_json::value::Serializer as ser::Serializer>::SerializeStruct>),
}

impl ser::SerializeStruct for StructOrWhole {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        match self {
            StructOrWhole::Struct(Struct(m)) => {
                m.insert(key.to_string(), v.serialize(Abridger)?);
                Ok(())
            }
            StructOrWhole::Whole(Whole(s)) => s.serialize_field(key, v),
        }
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), Error> {
        match self {
            StructOrWhole::Struct(_) => Ok(()),
            StructOrWhole::Whole(Whole(s)) => s.skip_field(key),
        }
    }
    fn end(self) -> Result<Value, Error> {
        match self {
            StructOrWhole::Struct(Struct(m)) => Ok(Value::Object(m)),
            StructOrWhole::Whole(Whole(s)) => s.end().map(abridge),
        }
    }
}

impl<S: ser::SerializeMap<Ok = Value, Error = Error>> ser::SerializeMap for Whole<S> {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
        self.0.serialize_key(k)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.0.serialize_value(v)
    }
    fn end(self) -> Result<Value, Error> {
        self.0.end().map(abridge)
    }
}

impl<S: ser::SerializeTupleVariant<Ok = Value, Error = Error>> ser::SerializeTupleVariant
    for Whole<S>
{
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.0.serialize_field(v)
    }
    fn end(self) -> Result<Value, Error> {
        self.0.end().map(abridge)
    }
}

impl<S: ser::SerializeStructVariant<Ok = Value, Error = Error>> ser::SerializeStructVariant
    for Whole<S>
{
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.0.serialize_field(key, v)
    }
    fn end(self) -> Result<Value, Error> {
        self.0.end().map(abridge)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::json;

    use super::super::abridge;
    use super::to_abridged_value;

    #[derive(Serialize)]
    struct Point {
        t: i64,
        v: f64,
    }

    #[derive(Serialize)]
    enum Kind {
        Unit,
        New(Vec<u32>),
        Tuple(u8, String),
        Fields { a: Vec<u64>, b: Option<String> },
    }

    #[derive(Serialize)]
    struct Everything {
        series: Vec<Point>,
        short: Vec<Point>,
        exactly: Vec<u8>,
        one_more: Vec<u8>,
        text: String,
        long_text: String,
        nested: Vec<Vec<i64>>,
        map: BTreeMap<String, Vec<f64>>,
        int_keys: BTreeMap<u32, String>,
        kinds: Vec<Kind>,
        tuple: (u8, String, Option<bool>),
        nothing: Option<u8>,
        unit: (),
        nan: f64,
        big: u64,
        neg: i128,
        json: serde_json::Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        iter: Vec<String>,
    }

    #[test]
    fn same_as_abridging_the_whole_value() {
        let e = Everything {
            series: (0..1440)
                .map(|i| Point {
                    t: i,
                    v: i as f64 * 0.5,
                })
                .collect(),
            short: (0..3).map(|i| Point { t: i, v: 1.0 }).collect(),
            exactly: vec![7; 32],
            one_more: vec![7; 33],
            text: "ok".into(),
            long_text: "é".repeat(3000),
            nested: (0..40).map(|i| (0..i).collect()).collect(),
            map: [("a".to_string(), vec![1.5; 50]), ("b".into(), vec![2.0])].into(),
            int_keys: [(3, "x".repeat(5000)), (1, "y".into())].into(),
            kinds: vec![
                Kind::Unit,
                Kind::New((0..100).collect()),
                Kind::Tuple(1, "z".repeat(4097)),
                Kind::Fields {
                    a: (0..35).collect(),
                    b: None,
                },
            ],
            tuple: (1, "t".into(), Some(true)),
            nothing: None,
            unit: (),
            nan: f64::NAN,
            big: u64::MAX,
            neg: -5,
            json: json!({"deep": [[1, 2], (0..64).collect::<Vec<_>>()], "s": "w".repeat(9000)}),
            skipped: None,
            iter: (0..70).map(|i| i.to_string()).collect(),
        };
        let want = abridge(serde_json::to_value(&e).unwrap());
        assert_eq!(to_abridged_value(&e), want);
        let many: Vec<Everything> = Vec::new();
        assert_eq!(
            to_abridged_value(&many),
            abridge(serde_json::to_value(&many).unwrap())
        );
        // A sequence without a length hint.
        struct NoLen;
        impl Serialize for NoLen {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0..100).filter(|i| i % 2 == 0))
            }
        }
        assert_eq!(
            to_abridged_value(&NoLen),
            abridge(serde_json::to_value(&NoLen).unwrap())
        );
    }
}
