//! Record batches and stream elements as they travel between TaskManagers.
//!
//! A [`WireBatch`] is a [`Batch`] in a serde-friendly form. What arrives from a peer is untrusted:
//! [`WireBatch::into_batch`] checks it against the schema the receiving channel expects (column
//! count and types, block lengths, the row limit, booleans that are 0 or 1, well-formed string
//! columns) before the engine sees it, so a malformed or hostile batch is an error, never a panic or
//! a corrupt state.
//!
//! # Column encodings
//!
//! On the wire a column is one *block*: its values back to back at a fixed width, little-endian
//! (`i64` and timestamps as two's complement, `f64` as its IEEE 754 bits, `bool` as one byte 0 or 1,
//! string offsets as `u32`), carried by postcard as one byte string (a varint length, then the
//! bytes). Encoding and decoding a column are then a copy and a tight loop. The first encoding of
//! protocol version 1 gave every value its own postcard varint, which cost a serde call (and a
//! `memcpy` call) per value and made serialization the largest cost of a network exchange
//! (`docs/benchmarks.md`, W2-net).
//!
//! postcard names a variant by its position and variants are only ever appended (see
//! `messages.rs`), so the blocks are variants 5 to 9 of [`WireColumn`], after the per-value
//! variants 0 to 4. In memory the two halves play different parts:
//!
//! - variants 0 to 4 hold *values*: what [`WireBatch::from_batch`] makes of a local batch by moving
//!   its vectors, so the embedded mini-cluster, which passes messages between TaskManagers as
//!   values, never converts anything; a peer of the first encoding also decodes to these;
//! - variants 5 to 9 hold *blocks*, as they arrived, until `into_batch` checks and converts them.
//!
//! Serializing writes a block whatever the variant (values are converted then, on the sending
//! connection's task), so a node never sends variants 0 to 4; it still reads them. Equality is by
//! the block each side would put on the wire, so a column equals itself after a round trip.

use std::borrow::Cow;
use std::fmt;

use serde::ser::SerializeStructVariant;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::batch::{Batch, Column, StrColumn};
use crate::dataflow::element::Element;
use crate::limits::BATCH_ROWS_MAX;
use crate::types::DataType;

/// Bytes of one value in an `i64`, `f64` or timestamp block.
const WORD_BYTES: usize = 8;

/// Bytes of one string offset in a string block.
const OFFSET_BYTES: usize = 4;

/// The variant indices of the blocks, as the derived `Deserialize` numbers them (declaration
/// order); `Serialize` writes them by hand. `the_block_encoding_is_pinned` checks that both agree.
const INT_BLOCK: u32 = 5;
const FLOAT_BLOCK: u32 = 6;
const BOOL_BLOCK: u32 = 7;
const STR_BLOCK: u32 = 8;
const TIMESTAMP_BLOCK: u32 = 9;
const BLOCK_NAMES: [&str; 5] = ["IntBlock", "FloatBlock", "BoolBlock", "StrBlock", "TimestampBlock"];

/// One column of a batch: values (variants 0–4) or a block as received (5–9). See the module
/// documentation.
#[derive(Clone, Debug, Deserialize)]
pub enum WireColumn {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Str {
        offsets: Vec<u32>,
        data: String,
    },
    Timestamp(Vec<i64>),
    /// 8 bytes per value, little-endian two's complement.
    IntBlock(ByteBlock),
    /// 8 bytes per value: the `f64`'s bits, little-endian, so every NaN payload survives.
    FloatBlock(ByteBlock),
    /// One byte per value, 0 or 1.
    BoolBlock(ByteBlock),
    /// `offsets`: rows + 1 little-endian `u32`s into `data`, as in [`StrColumn`].
    StrBlock {
        offsets: ByteBlock,
        data: String,
    },
    /// 8 bytes per value (milliseconds since the epoch), little-endian two's complement.
    TimestampBlock(ByteBlock),
}

impl Serialize for WireColumn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const NAME: &str = "WireColumn";
        let (index, block, data) = self.as_block();
        let variant = BLOCK_NAMES[(index - INT_BLOCK) as usize];
        match data {
            None => serializer.serialize_newtype_variant(NAME, index, variant, block.as_ref()),
            Some(data) => {
                let mut fields = serializer.serialize_struct_variant(NAME, index, variant, 2)?;
                fields.serialize_field("offsets", block.as_ref())?;
                fields.serialize_field("data", data)?;
                fields.end()
            }
        }
    }
}

impl PartialEq for WireColumn {
    fn eq(&self, other: &WireColumn) -> bool {
        self.as_block() == other.as_block()
    }
}

/// Bytes that serde hands to the format as one byte string, so postcard writes a length and copies
/// the bytes once, instead of making one serde call per `u8` as for a `Vec<u8>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ByteBlock(pub Vec<u8>);

impl fmt::Debug for ByteBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteBlock({} bytes)", self.0.len())
    }
}

impl Serialize for ByteBlock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteBlock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl serde::de::Visitor<'_> for BytesVisitor {
            type Value = ByteBlock;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<ByteBlock, E> {
                Ok(ByteBlock(bytes.to_vec()))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<ByteBlock, E> {
                Ok(ByteBlock(bytes))
            }
        }
        // postcard checks the declared length against the bytes left before it hands them over,
        // so a hostile length never allocates.
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

impl ByteBlock {
    fn of_i64s(values: &[i64]) -> ByteBlock {
        let mut bytes = vec![0; values.len() * WORD_BYTES];
        for (chunk, value) in bytes.chunks_exact_mut(WORD_BYTES).zip(values) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        ByteBlock(bytes)
    }

    fn of_f64s(values: &[f64]) -> ByteBlock {
        let mut bytes = vec![0; values.len() * WORD_BYTES];
        for (chunk, value) in bytes.chunks_exact_mut(WORD_BYTES).zip(values) {
            chunk.copy_from_slice(&value.to_bits().to_le_bytes());
        }
        ByteBlock(bytes)
    }

    fn of_bools(values: &[bool]) -> ByteBlock {
        ByteBlock(values.iter().map(|&b| u8::from(b)).collect())
    }

    fn of_u32s(values: &[u32]) -> ByteBlock {
        let mut bytes = vec![0; values.len() * OFFSET_BYTES];
        for (chunk, value) in bytes.chunks_exact_mut(OFFSET_BYTES).zip(values) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        ByteBlock(bytes)
    }

    /// Checks that the block holds exactly `values` values of `width` bytes.
    fn check_length(&self, column: usize, values: usize, width: usize) -> Result<(), WireError> {
        if self.0.len() != values * width {
            return Err(WireError::BlockLength { column, found: self.0.len(), values, width });
        }
        Ok(())
    }

    fn words(&self) -> impl Iterator<Item = [u8; WORD_BYTES]> + '_ {
        self.0.chunks_exact(WORD_BYTES).map(|c| c.try_into().expect("chunks of WORD_BYTES"))
    }

    fn to_i64s(&self) -> Vec<i64> {
        self.words().map(i64::from_le_bytes).collect()
    }

    fn to_f64s(&self) -> Vec<f64> {
        self.words().map(|w| f64::from_bits(u64::from_le_bytes(w))).collect()
    }

    fn to_u32s(&self) -> Vec<u32> {
        self.0
            .chunks_exact(OFFSET_BYTES)
            .map(|c| u32::from_le_bytes(c.try_into().expect("chunks of OFFSET_BYTES")))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireBatch {
    pub rows: u32,
    pub columns: Vec<WireColumn>,
}

/// A stream element on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WireElement {
    Batch(WireBatch),
    Watermark(i64),
    EndOfInput,
    /// A checkpoint barrier (appended in protocol version 3).
    Barrier(u64),
}

/// Why a received batch was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("the batch has {found} columns, the channel's schema {expected}")]
    ColumnCount { found: usize, expected: usize },
    #[error("column {column} is {found}, the channel's schema says {expected}")]
    ColumnType { column: usize, found: &'static str, expected: DataType },
    #[error("column {column} has {found} values for a batch of {rows} rows")]
    ColumnLength { column: usize, found: usize, rows: u32 },
    #[error("the batch has {rows} rows, at most {max} are allowed")]
    TooManyRows { rows: u32, max: usize },
    #[error("column {column}: {message}")]
    Strings { column: usize, message: String },
    #[error("column {column}'s block has {found} bytes, expected {values} values of {width} bytes")]
    BlockLength { column: usize, found: usize, values: usize, width: usize },
    #[error("column {column}, row {row}: a boolean is byte {found}, expected 0 or 1")]
    BoolByte { column: usize, row: usize, found: u8 },
}

impl WireColumn {
    /// The column as the wire carries it: the block variant's index, its block, and a string
    /// column's data (`Some` for strings only). Values are converted; a block is borrowed.
    fn as_block(&self) -> (u32, Cow<'_, ByteBlock>, Option<&str>) {
        match self {
            WireColumn::Int(v) => (INT_BLOCK, Cow::Owned(ByteBlock::of_i64s(v)), None),
            WireColumn::Float(v) => (FLOAT_BLOCK, Cow::Owned(ByteBlock::of_f64s(v)), None),
            WireColumn::Bool(v) => (BOOL_BLOCK, Cow::Owned(ByteBlock::of_bools(v)), None),
            WireColumn::Str { offsets, data } => {
                (STR_BLOCK, Cow::Owned(ByteBlock::of_u32s(offsets)), Some(data))
            }
            WireColumn::Timestamp(v) => (TIMESTAMP_BLOCK, Cow::Owned(ByteBlock::of_i64s(v)), None),
            WireColumn::IntBlock(b) => (INT_BLOCK, Cow::Borrowed(b), None),
            WireColumn::FloatBlock(b) => (FLOAT_BLOCK, Cow::Borrowed(b), None),
            WireColumn::BoolBlock(b) => (BOOL_BLOCK, Cow::Borrowed(b), None),
            WireColumn::StrBlock { offsets, data } => (STR_BLOCK, Cow::Borrowed(offsets), Some(data)),
            WireColumn::TimestampBlock(b) => (TIMESTAMP_BLOCK, Cow::Borrowed(b), None),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            WireColumn::Int(_) | WireColumn::IntBlock(_) => "int",
            WireColumn::Float(_) | WireColumn::FloatBlock(_) => "float",
            WireColumn::Bool(_) | WireColumn::BoolBlock(_) => "bool",
            WireColumn::Str { .. } | WireColumn::StrBlock { .. } => "string",
            WireColumn::Timestamp(_) | WireColumn::TimestampBlock(_) => "timestamp",
        }
    }

    /// `column`'s values, moved: no copy (serializing converts them to a block).
    fn from_column(column: Column) -> WireColumn {
        match column {
            Column::Int(v) => WireColumn::Int(v),
            Column::Float(v) => WireColumn::Float(v),
            Column::Bool(v) => WireColumn::Bool(v),
            Column::Str(s) => {
                let (offsets, data) = s.into_parts();
                WireColumn::Str { offsets, data }
            }
            Column::Timestamp(v) => WireColumn::Timestamp(v),
        }
    }

    /// Rebuilds column `index` of a batch of `rows` rows (at most `BATCH_ROWS_MAX`) if it has the
    /// type `expected` and is well-formed.
    fn into_column(self, index: usize, expected: DataType, rows: usize) -> Result<Column, WireError> {
        let found = self.kind();
        let strings = |message| WireError::Strings { column: index, message };
        let column = match (self, expected) {
            (WireColumn::IntBlock(b), DataType::Int) => {
                b.check_length(index, rows, WORD_BYTES)?;
                Column::Int(b.to_i64s())
            }
            (WireColumn::FloatBlock(b), DataType::Float) => {
                b.check_length(index, rows, WORD_BYTES)?;
                Column::Float(b.to_f64s())
            }
            (WireColumn::BoolBlock(b), DataType::Bool) => {
                b.check_length(index, rows, 1)?;
                if let Some((row, &found)) = b.0.iter().enumerate().find(|(_, &byte)| byte > 1) {
                    return Err(WireError::BoolByte { column: index, row, found });
                }
                Column::Bool(b.0.into_iter().map(|byte| byte == 1).collect())
            }
            (WireColumn::StrBlock { offsets, data }, DataType::Str) => {
                offsets.check_length(index, rows + 1, OFFSET_BYTES)?;
                Column::Str(StrColumn::from_parts(offsets.to_u32s(), data).map_err(strings)?)
            }
            (WireColumn::TimestampBlock(b), DataType::Timestamp) => {
                b.check_length(index, rows, WORD_BYTES)?;
                Column::Timestamp(b.to_i64s())
            }
            (WireColumn::Int(v), DataType::Int) => Column::Int(v),
            (WireColumn::Float(v), DataType::Float) => Column::Float(v),
            (WireColumn::Bool(v), DataType::Bool) => Column::Bool(v),
            (WireColumn::Timestamp(v), DataType::Timestamp) => Column::Timestamp(v),
            (WireColumn::Str { offsets, data }, DataType::Str) => {
                Column::Str(StrColumn::from_parts(offsets, data).map_err(strings)?)
            }
            (_, expected) => return Err(WireError::ColumnType { column: index, found, expected }),
        };
        // Blocks were checked above; this checks values.
        if column.len() != rows {
            let rows = u32::try_from(rows).expect("rows were checked against BATCH_ROWS_MAX");
            return Err(WireError::ColumnLength { column: index, found: column.len(), rows });
        }
        Ok(column)
    }
}

impl WireBatch {
    /// `batch` with its columns moved in as values (no copy).
    pub fn from_batch(batch: Batch) -> WireBatch {
        let rows = u32::try_from(batch.len()).expect("batches stay far below 2^32 rows");
        WireBatch { rows, columns: batch.columns.into_iter().map(WireColumn::from_column).collect() }
    }

    /// Checks the batch against the types the receiving channel expects and rebuilds it.
    pub fn into_batch(self, expected: &[DataType]) -> Result<Batch, WireError> {
        if self.rows as usize > BATCH_ROWS_MAX {
            return Err(WireError::TooManyRows { rows: self.rows, max: BATCH_ROWS_MAX });
        }
        if self.columns.len() != expected.len() {
            return Err(WireError::ColumnCount { found: self.columns.len(), expected: expected.len() });
        }
        let rows = self.rows as usize;
        let columns = self
            .columns
            .into_iter()
            .zip(expected)
            .enumerate()
            .map(|(i, (column, &data_type))| column.into_column(i, data_type, rows))
            .collect::<Result<Vec<Column>, WireError>>()?;
        Ok(Batch::with_rows(columns, rows))
    }
}

impl WireElement {
    pub fn from_element(element: Element) -> WireElement {
        match element {
            Element::Batch(b) => WireElement::Batch(WireBatch::from_batch(b)),
            Element::Watermark(w) => WireElement::Watermark(w),
            Element::EndOfInput => WireElement::EndOfInput,
            Element::Barrier(id) => WireElement::Barrier(id.0),
        }
    }

    pub fn into_element(self, expected: &[DataType]) -> Result<Element, WireError> {
        Ok(match self {
            WireElement::Batch(b) => Element::Batch(b.into_batch(expected)?),
            WireElement::Watermark(w) => Element::Watermark(w),
            WireElement::EndOfInput => Element::EndOfInput,
            WireElement::Barrier(id) => Element::Barrier(crate::ids::CheckpointId(id)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_message, encode_frame, FrameDecoder, FRAME_HEADER_BYTES};
    use proptest::prelude::*;

    const TYPES: [DataType; 5] =
        [DataType::Int, DataType::Float, DataType::Bool, DataType::Str, DataType::Timestamp];

    fn sample() -> Batch {
        Batch::new(vec![
            Column::Int(vec![1, -2]),
            Column::Float(vec![0.5, f64::NAN]),
            Column::Bool(vec![true, false]),
            Column::Str(["ä,b", ""].into_iter().collect()),
            Column::Timestamp(vec![0, i64::MAX]),
        ])
    }

    /// Through a frame and back, as a peer receives it.
    fn through_a_frame(element: &WireElement) -> WireElement {
        let mut bytes = Vec::new();
        encode_frame(element, &mut bytes).unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        let payload = decoder.next_frame().unwrap().expect("one whole frame");
        decode_message(&payload).unwrap()
    }

    /// Cells compared by value, floats by their bits (so a NaN equals itself).
    fn comparable(batch: &Batch) -> Vec<Vec<String>> {
        let cell = |c: &Column, r: usize| match c {
            Column::Float(v) => format!("{:#x}", v[r].to_bits()),
            other => format!("{:?}", other.scalar(r)),
        };
        batch.columns.iter().map(|c| (0..batch.len()).map(|r| cell(c, r)).collect()).collect()
    }

    #[test]
    fn a_batch_round_trips_through_a_frame() {
        let element = through_a_frame(&WireElement::from_element(Element::Batch(sample())));
        let Element::Batch(batch) = element.into_element(&TYPES).unwrap() else { panic!("a batch") };
        assert_eq!(batch.len(), 2);
        assert_eq!(comparable(&batch), comparable(&sample()));
    }

    #[test]
    fn the_block_encoding_is_pinned() {
        let batch = Batch::new(vec![
            Column::Int(vec![1, -2]),
            Column::Bool(vec![true, false]),
            Column::Str(["ab", ""].into_iter().collect()),
        ]);
        let mut bytes = Vec::new();
        encode_frame(&WireBatch::from_batch(batch), &mut bytes).unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            2, 3,                                           // rows, columns
            5, 16,                                          // IntBlock of 16 bytes
            1, 0, 0, 0, 0, 0, 0, 0,
            0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            7, 2, 1, 0,                                     // BoolBlock of 2 bytes
            8, 12, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0,      // StrBlock: offsets 0, 2, 2
            2, b'a', b'b',                                  // and its data
        ];
        assert_eq!(&bytes[FRAME_HEADER_BYTES..], expected);
        let back: WireBatch = decode_message(expected).unwrap();
        assert!(matches!(
            back.columns[..],
            [WireColumn::IntBlock(_), WireColumn::BoolBlock(_), WireColumn::StrBlock { .. }]
        ));
    }

    #[test]
    fn values_are_sent_as_blocks_and_equal_them() {
        let sent = WireBatch::from_batch(sample());
        assert!(matches!(sent.columns[0], WireColumn::Int(_)), "a local batch's columns move in as values");
        let WireElement::Batch(received) = through_a_frame(&WireElement::Batch(sent.clone())) else {
            panic!("a batch")
        };
        assert!(matches!(received.columns[0], WireColumn::IntBlock(_)), "what arrives is a block");
        assert_eq!(received, sent);
        assert_ne!(received.columns[0], WireColumn::Int(vec![1, 2]));
    }

    /// The per-value encoding, as nodes of the first version-1 encoding wrote it.
    #[derive(Serialize)]
    enum PerValueColumn {
        Int(Vec<i64>),
        Float(Vec<f64>),
        Bool(Vec<bool>),
        Str { offsets: Vec<u32>, data: String },
        Timestamp(Vec<i64>),
    }

    #[test]
    fn the_per_value_encoding_is_still_accepted() {
        let columns = vec![
            PerValueColumn::Int(vec![1, -2]),
            PerValueColumn::Float(vec![0.5, f64::NAN]),
            PerValueColumn::Bool(vec![true, false]),
            PerValueColumn::Str { offsets: vec![0, 4, 4], data: "ä,b".into() },
            PerValueColumn::Timestamp(vec![0, i64::MAX]),
        ];
        let mut bytes = Vec::new();
        encode_frame(&(2u32, columns), &mut bytes).unwrap();
        let w: WireBatch = decode_message(&bytes[FRAME_HEADER_BYTES..]).unwrap();
        assert!(matches!(w.columns[0], WireColumn::Int(_)));
        assert_eq!(comparable(&w.into_batch(&TYPES).unwrap()), comparable(&sample()));
    }

    #[test]
    fn batches_that_do_not_fit_the_channel_are_refused() {
        let wire = WireBatch::from_batch;
        assert_eq!(
            wire(sample()).into_batch(&TYPES[..4]),
            Err(WireError::ColumnCount { found: 5, expected: 4 })
        );
        let mut types = TYPES;
        types[0] = DataType::Float;
        assert_eq!(
            wire(sample()).into_batch(&types),
            Err(WireError::ColumnType { column: 0, found: "int", expected: DataType::Float })
        );
        let mut w = wire(sample());
        w.rows = 3;
        assert_eq!(w.into_batch(&TYPES), Err(WireError::ColumnLength { column: 0, found: 2, rows: 3 }));
        let WireElement::Batch(mut w) = through_a_frame(&WireElement::Batch(wire(sample()))) else {
            panic!("a batch")
        };
        w.rows = 3;
        assert_eq!(
            w.into_batch(&TYPES),
            Err(WireError::BlockLength { column: 0, found: 16, values: 3, width: 8 })
        );
        let w = WireBatch { rows: u32::MAX, columns: vec![] };
        assert!(matches!(w.into_batch(&[]), Err(WireError::TooManyRows { .. })));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        let block = |rows, column| WireBatch { rows, columns: vec![column] };
        let bytes = |b: &[u8]| ByteBlock(b.to_vec());
        assert_eq!(
            block(1, WireColumn::TimestampBlock(bytes(&[0; 7]))).into_batch(&[DataType::Timestamp]),
            Err(WireError::BlockLength { column: 0, found: 7, values: 1, width: 8 })
        );
        let error = block(3, WireColumn::BoolBlock(bytes(&[1, 0, 2]))).into_batch(&[DataType::Bool]);
        assert_eq!(error, Err(WireError::BoolByte { column: 0, row: 2, found: 2 }));
        assert_eq!(error.unwrap_err().to_string(), "column 0, row 2: a boolean is byte 2, expected 0 or 1");
        // Offsets for 1 row are 2 u32s; "é" is 2 bytes, so an offset of 1 splits it.
        let strings = |offsets: &[u32], data: &str| {
            let offsets = ByteBlock(offsets.iter().flat_map(|o| o.to_le_bytes()).collect());
            block(1, WireColumn::StrBlock { offsets, data: data.into() }).into_batch(&[DataType::Str])
        };
        assert_eq!(
            strings(&[0, 1], "é"),
            Err(WireError::Strings {
                column: 0,
                message: "string offsets end at 1, but the data has 2 bytes".into()
            })
        );
        assert!(matches!(strings(&[0, 1, 2], "é"), Err(WireError::BlockLength { values: 2, .. })));
        assert!(strings(&[0, 2], "é").is_ok());
        let w = WireBatch {
            rows: 1,
            columns: vec![WireColumn::Str { offsets: vec![0, 1, 2], data: "é".into() }],
        };
        assert!(matches!(w.into_batch(&[DataType::Str]), Err(WireError::Strings { .. })));
    }

    /// A column of `rows` values of a random type.
    fn column(rows: usize) -> impl Strategy<Value = Column> {
        let strings = prop::collection::vec(".{0,5}", rows..=rows)
            .prop_map(|v| Column::Str(v.iter().map(String::as_str).collect()));
        prop_oneof![
            prop::collection::vec(any::<i64>(), rows..=rows).prop_map(Column::Int),
            prop::collection::vec(any::<f64>(), rows..=rows).prop_map(Column::Float),
            prop::collection::vec(any::<bool>(), rows..=rows).prop_map(Column::Bool),
            strings,
            prop::collection::vec(any::<i64>(), rows..=rows).prop_map(Column::Timestamp),
        ]
    }

    fn batch() -> impl Strategy<Value = Batch> {
        (0usize..40, 0usize..6).prop_flat_map(|(rows, width)| {
            prop::collection::vec(column(rows), width..=width)
                .prop_map(move |columns| Batch::with_rows(columns, rows))
        })
    }

    proptest! {
        #[test]
        fn every_batch_round_trips_in_the_block_encoding(batch in batch()) {
            let types: Vec<DataType> = batch.columns.iter().map(Column::data_type).collect();
            let element = through_a_frame(&WireElement::from_element(Element::Batch(batch.clone())));
            let Element::Batch(back) = element.into_element(&types).unwrap() else { panic!("a batch") };
            prop_assert_eq!(back.len(), batch.len());
            prop_assert_eq!(comparable(&back), comparable(&batch));
        }

        #[test]
        fn arbitrary_blocks_are_refused_or_valid(
            rows in 0u32..8,
            kind in 0usize..5,
            block in prop::collection::vec(any::<u8>(), 0..80),
            data in ".{0,6}",
        ) {
            let block = ByteBlock(block);
            let column = match kind {
                0 => WireColumn::IntBlock(block),
                1 => WireColumn::FloatBlock(block),
                2 => WireColumn::BoolBlock(block),
                3 => WireColumn::StrBlock { offsets: block, data },
                _ => WireColumn::TimestampBlock(block),
            };
            let w = WireBatch { rows, columns: vec![column] };
            if let Ok(batch) = w.into_batch(&[TYPES[kind]]) {
                prop_assert_eq!(batch.len(), rows as usize);
                for r in 0..batch.len() {
                    let _ = batch.row(r);
                }
            }
        }

        #[test]
        fn arbitrary_wire_batches_are_refused_or_valid(
            rows in 0u32..8,
            offsets in prop::collection::vec(0u32..12, 0..6),
            data in ".{0,6}",
            ints in prop::collection::vec(any::<i64>(), 0..8),
        ) {
            let w = WireBatch { rows, columns: vec![WireColumn::Int(ints), WireColumn::Str { offsets, data }] };
            if let Ok(batch) = w.into_batch(&[DataType::Int, DataType::Str]) {
                // Whatever was accepted is a well-formed batch: every row can be read.
                for r in 0..batch.len() {
                    let _ = batch.row(r);
                }
            }
        }

        #[test]
        fn arbitrary_payloads_decode_or_are_malformed(payload in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(WireElement::Batch(w)) = decode_message::<WireElement>(&payload) {
                let _ = w.into_batch(&TYPES);
            }
        }
    }
}
