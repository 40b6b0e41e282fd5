//! The ONNX protobuf messages the exporter writes, encoded by hand.
//!
//! Only writing is needed and only a dozen message types, so a small wire-format encoder is
//! clearer (and far cheaper to build) than a protobuf code generator. Field numbers are those of
//! `onnx/onnx.proto` (IR version 8); repeated scalars are written packed, which every protobuf
//! parser accepts for proto2 fields too.

/// Element types of `TensorProto.DataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum DataType {
    Float = 1,
    Int64 = 7,
    Bool = 9,
    Double = 11,
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn float(&mut self, field: u32, v: f32) {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn message(&mut self, field: u32, m: &impl Encode) {
        self.bytes(field, &m.encode());
    }
    fn packed_ints(&mut self, field: u32, v: &[i64]) {
        let mut inner = Writer::default();
        v.iter().for_each(|&x| inner.varint(x as u64));
        self.bytes(field, &inner.0);
    }
    fn packed_floats(&mut self, field: u32, v: &[f32]) {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.bytes(field, &b);
    }
}

pub trait Encode {
    fn encode(&self) -> Vec<u8>;
}

/// A constant tensor (an initializer or a tensor attribute), stored as little-endian raw data.
#[derive(Debug, Clone)]
pub struct TensorProto {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: DataType,
    pub raw: Vec<u8>,
}

impl TensorProto {
    pub fn f32(name: &str, dims: &[i64], v: &[f32]) -> Self {
        Self::raw(
            name,
            dims,
            DataType::Float,
            v.iter().flat_map(|x| x.to_le_bytes()),
        )
    }
    pub fn f64(name: &str, dims: &[i64], v: &[f64]) -> Self {
        Self::raw(
            name,
            dims,
            DataType::Double,
            v.iter().flat_map(|x| x.to_le_bytes()),
        )
    }
    pub fn i64(name: &str, dims: &[i64], v: &[i64]) -> Self {
        Self::raw(
            name,
            dims,
            DataType::Int64,
            v.iter().flat_map(|x| x.to_le_bytes()),
        )
    }
    pub fn bool(name: &str, dims: &[i64], v: &[bool]) -> Self {
        Self::raw(name, dims, DataType::Bool, v.iter().map(|&b| u8::from(b)))
    }
    fn raw(name: &str, dims: &[i64], data_type: DataType, raw: impl Iterator<Item = u8>) -> Self {
        let t = TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type,
            raw: raw.collect(),
        };
        let width = match data_type {
            DataType::Bool => 1,
            DataType::Float => 4,
            DataType::Int64 | DataType::Double => 8,
        };
        assert_eq!(
            t.raw.len(),
            width * dims.iter().product::<i64>() as usize,
            "tensor {name}: data does not match its dims"
        );
        t
    }
}

impl Encode for TensorProto {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.packed_ints(1, &self.dims);
        w.int(2, self.data_type as i64);
        w.bytes(8, self.name.as_bytes());
        w.bytes(9, &self.raw);
        w.0
    }
}

/// A node attribute.
#[derive(Debug, Clone)]
pub enum Attr {
    Float(f32),
    Int(i64),
    String(String),
    Tensor(TensorProto),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

struct Attribute<'a>(&'a str, &'a Attr);

impl Encode for Attribute<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(1, self.0.as_bytes());
        // AttributeProto.type (field 20): FLOAT 1, INT 2, STRING 3, TENSOR 4, FLOATS 6, INTS 7, STRINGS 8.
        let kind = match self.1 {
            Attr::Float(v) => {
                w.float(2, *v);
                1
            }
            Attr::Int(v) => {
                w.int(3, *v);
                2
            }
            Attr::String(s) => {
                w.bytes(4, s.as_bytes());
                3
            }
            Attr::Tensor(t) => {
                w.message(5, t);
                4
            }
            Attr::Floats(v) => {
                w.packed_floats(7, v);
                6
            }
            Attr::Ints(v) => {
                w.packed_ints(8, v);
                7
            }
            Attr::Strings(v) => {
                v.iter().for_each(|s| w.bytes(9, s.as_bytes()));
                8
            }
        };
        w.int(20, kind);
        w.0
    }
}

/// One operator application.
#[derive(Debug, Clone)]
pub struct Node {
    pub op: String,
    pub domain: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(String, Attr)>,
}

impl Encode for Node {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.inputs.iter().for_each(|s| w.bytes(1, s.as_bytes()));
        self.outputs.iter().for_each(|s| w.bytes(2, s.as_bytes()));
        w.bytes(3, self.name.as_bytes());
        w.bytes(4, self.op.as_bytes());
        for (name, a) in &self.attributes {
            w.message(5, &Attribute(name, a));
        }
        if !self.domain.is_empty() {
            w.bytes(7, self.domain.as_bytes());
        }
        w.0
    }
}

/// A dimension of a graph input or output: fixed, or named (dynamic).
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

/// A typed tensor graph input or output.
#[derive(Debug, Clone)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: DataType,
    pub dims: Vec<Dim>,
    pub doc: String,
}

impl Encode for ValueInfo {
    fn encode(&self) -> Vec<u8> {
        let mut shape = Writer::default();
        for d in &self.dims {
            let mut dim = Writer::default();
            match d {
                Dim::Fixed(v) => dim.int(1, *v),
                Dim::Named(s) => dim.bytes(2, s.as_bytes()),
            }
            shape.bytes(1, &dim.0);
        }
        let mut tensor = Writer::default();
        tensor.int(1, self.elem_type as i64);
        tensor.bytes(2, &shape.0);
        let mut ty = Writer::default();
        ty.bytes(1, &tensor.0);
        let mut w = Writer::default();
        w.bytes(1, self.name.as_bytes());
        w.bytes(2, &ty.0);
        if !self.doc.is_empty() {
            w.bytes(3, self.doc.as_bytes());
        }
        w.0
    }
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub name: String,
    pub doc: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

impl Encode for Graph {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.nodes.iter().for_each(|n| w.message(1, n));
        w.bytes(2, self.name.as_bytes());
        self.initializers.iter().for_each(|t| w.message(5, t));
        if !self.doc.is_empty() {
            w.bytes(10, self.doc.as_bytes());
        }
        self.inputs.iter().for_each(|v| w.message(11, v));
        self.outputs.iter().for_each(|v| w.message(12, v));
        w.0
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub ir_version: i64,
    /// (domain, version); "" is the default ONNX domain.
    pub opsets: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub doc: String,
    pub graph: Graph,
    pub metadata: Vec<(String, String)>,
}

impl Encode for Model {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.int(1, self.ir_version);
        w.bytes(2, self.producer_name.as_bytes());
        w.bytes(3, self.producer_version.as_bytes());
        w.bytes(6, self.doc.as_bytes());
        w.message(7, &self.graph);
        for (domain, version) in &self.opsets {
            let mut o = Writer::default();
            o.bytes(1, domain.as_bytes());
            o.int(2, *version);
            w.bytes(8, &o.0);
        }
        for (k, v) in &self.metadata {
            let mut e = Writer::default();
            e.bytes(1, k.as_bytes());
            e.bytes(2, v.as_bytes());
            w.bytes(14, &e.0);
        }
        w.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_ints_follow_the_wire_format() {
        let mut w = Writer::default();
        w.varint(300);
        assert_eq!(w.0, [0xac, 0x02]);
        let mut w = Writer::default();
        w.int(1, -1);
        // key 0x08, then -1 as a ten-byte two's-complement varint
        assert_eq!(w.0.len(), 11);
        assert_eq!(w.0[0], 0x08);
        assert_eq!(*w.0.last().unwrap(), 0x01);
    }

    #[test]
    #[should_panic(expected = "does not match its dims")]
    fn a_tensor_must_fill_its_dims() {
        TensorProto::f32("w", &[2, 3], &[1.0; 5]);
    }
}
