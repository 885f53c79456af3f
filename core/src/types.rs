//! Data types, fields and schemas: the declared shape of every record stream.

use std::fmt;

/// The type of one field. Every field is non-null.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// 64-bit signed integer with Java `long` arithmetic (wrapping, truncating division).
    Int,
    /// IEEE 754 double.
    Float,
    Bool,
    /// UTF-8 text.
    Str,
    /// Milliseconds since the Unix epoch, as a 64-bit integer.
    Timestamp,
}

impl DataType {
    /// Parses the name a job file uses for a type.
    pub fn from_name(name: &str) -> Option<DataType> {
        Some(match name {
            "int" | "i64" | "long" => DataType::Int,
            "float" | "f64" | "double" => DataType::Float,
            "bool" | "boolean" => DataType::Bool,
            "string" | "str" => DataType::Str,
            "timestamp" => DataType::Timestamp,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::Int => "int",
            DataType::Float => "float",
            DataType::Bool => "bool",
            DataType::Str => "string",
            DataType::Timestamp => "timestamp",
        }
    }

    /// Int and Timestamp share a physical representation (`i64`).
    pub fn is_integer_like(self) -> bool {
        matches!(self, DataType::Int | DataType::Timestamp)
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, DataType::Int | DataType::Float)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub data_type: DataType,
}

impl Field {
    pub fn new(name: impl Into<String>, data_type: DataType) -> Field {
        Field { name: name.into(), data_type }
    }
}

/// Where a stream's event time comes from: a timestamp field, read as `value + offset_ms`.
/// A window's results carry `window_end` (exclusive) with an offset of -1, so that their event
/// time is the window's last millisecond, as in Flink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTimeField {
    pub index: usize,
    pub offset_ms: i64,
}

/// The fields of a stream, in order, and which of them carries event time.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Schema {
    pub fields: Vec<Field>,
    pub event_time: Option<EventTimeField>,
}

impl Schema {
    pub fn new(fields: Vec<Field>) -> Schema {
        Schema { fields, event_time: None }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    pub fn data_types(&self) -> Vec<DataType> {
        self.fields.iter().map(|f| f.data_type).collect()
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: {}", field.name, field.data_type)?;
        }
        f.write_str(")")
    }
}

/// One value of a field; used at the edges (literals, parsing, printing), never per record on hot paths.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Timestamp(i64),
}

impl Scalar {
    pub fn data_type(&self) -> DataType {
        match self {
            Scalar::Int(_) => DataType::Int,
            Scalar::Float(_) => DataType::Float,
            Scalar::Bool(_) => DataType::Bool,
            Scalar::Str(_) => DataType::Str,
            Scalar::Timestamp(_) => DataType::Timestamp,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(v) | Scalar::Timestamp(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{v:?}"),
            Scalar::Bool(v) => write!(f, "{v}"),
            Scalar::Str(v) => f.write_str(v),
        }
    }
}
