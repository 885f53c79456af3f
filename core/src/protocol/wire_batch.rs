//! Record batches and stream elements as they travel between TaskManagers.
//!
//! A [`WireBatch`] is a [`Batch`] in a serde-friendly form. What arrives from a peer is untrusted:
//! [`WireBatch::into_batch`] checks it against the schema the receiving channel expects (column
//! count and types, equal lengths, the row limit, well-formed string columns) before the engine
//! sees it, so a malformed or hostile batch is an error, never a panic or a corrupt state.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::batch::{Batch, Column, StrColumn};
use crate::dataflow::element::Element;
use crate::limits::BATCH_ROWS_MAX;
use crate::types::DataType;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WireColumn {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Str { offsets: Vec<u32>, data: String },
    Timestamp(Vec<i64>),
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
}

impl WireColumn {
    fn kind(&self) -> &'static str {
        match self {
            WireColumn::Int(_) => "int",
            WireColumn::Float(_) => "float",
            WireColumn::Bool(_) => "bool",
            WireColumn::Str { .. } => "string",
            WireColumn::Timestamp(_) => "timestamp",
        }
    }
}

impl WireBatch {
    pub fn from_batch(batch: Batch) -> WireBatch {
        let rows = u32::try_from(batch.len()).expect("batches stay far below 2^32 rows");
        let columns = batch
            .columns
            .into_iter()
            .map(|c| match c {
                Column::Int(v) => WireColumn::Int(v),
                Column::Float(v) => WireColumn::Float(v),
                Column::Bool(v) => WireColumn::Bool(v),
                Column::Str(s) => {
                    let (offsets, data) = s.into_parts();
                    WireColumn::Str { offsets, data }
                }
                Column::Timestamp(v) => WireColumn::Timestamp(v),
            })
            .collect();
        WireBatch { rows, columns }
    }

    /// Checks the batch against the types the receiving channel expects and rebuilds it.
    pub fn into_batch(self, expected: &[DataType]) -> Result<Batch, WireError> {
        if self.rows as usize > BATCH_ROWS_MAX {
            return Err(WireError::TooManyRows { rows: self.rows, max: BATCH_ROWS_MAX });
        }
        if self.columns.len() != expected.len() {
            return Err(WireError::ColumnCount { found: self.columns.len(), expected: expected.len() });
        }
        let rows = self.rows;
        let mut columns = Vec::with_capacity(expected.len());
        for (i, (column, &data_type)) in self.columns.into_iter().zip(expected).enumerate() {
            let found = column.kind();
            let column = match (column, data_type) {
                (WireColumn::Int(v), DataType::Int) => Column::Int(v),
                (WireColumn::Float(v), DataType::Float) => Column::Float(v),
                (WireColumn::Bool(v), DataType::Bool) => Column::Bool(v),
                (WireColumn::Timestamp(v), DataType::Timestamp) => Column::Timestamp(v),
                (WireColumn::Str { offsets, data }, DataType::Str) => Column::Str(
                    StrColumn::from_parts(offsets, data)
                        .map_err(|message| WireError::Strings { column: i, message })?,
                ),
                (_, expected) => return Err(WireError::ColumnType { column: i, found, expected }),
            };
            if column.len() != rows as usize {
                return Err(WireError::ColumnLength { column: i, found: column.len(), rows });
            }
            columns.push(column);
        }
        Ok(Batch::with_rows(columns, rows as usize))
    }
}

impl WireElement {
    pub fn from_element(element: Element) -> WireElement {
        match element {
            Element::Batch(b) => WireElement::Batch(WireBatch::from_batch(b)),
            Element::Watermark(w) => WireElement::Watermark(w),
            Element::EndOfInput => WireElement::EndOfInput,
        }
    }

    pub fn into_element(self, expected: &[DataType]) -> Result<Element, WireError> {
        Ok(match self {
            WireElement::Batch(b) => Element::Batch(b.into_batch(expected)?),
            WireElement::Watermark(w) => Element::Watermark(w),
            WireElement::EndOfInput => Element::EndOfInput,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_message, encode_frame, FrameDecoder};
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

    #[test]
    fn a_batch_round_trips_through_a_frame() {
        let mut bytes = Vec::new();
        encode_frame(&WireElement::from_element(Element::Batch(sample())), &mut bytes).unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        let payload = decoder.next_frame().unwrap().expect("one whole frame");
        let element: WireElement = decode_message(&payload).unwrap();
        let Element::Batch(batch) = element.into_element(&TYPES).unwrap() else { panic!("a batch") };
        assert_eq!(batch.row(0), sample().row(0));
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn batches_that_do_not_fit_the_channel_are_refused() {
        let wire = |b: Batch| WireBatch::from_batch(b);
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
        let w = WireBatch { rows: u32::MAX, columns: vec![] };
        assert!(matches!(w.into_batch(&[]), Err(WireError::TooManyRows { .. })));
        let w =
            WireBatch { rows: 1, columns: vec![WireColumn::Str { offsets: vec![0, 1], data: "é".into() }] };
        assert_eq!(
            w.into_batch(&[DataType::Str]),
            Err(WireError::Strings {
                column: 0,
                message: "string offsets end at 1, but the data has 2 bytes".into()
            })
        );
        let w = WireBatch {
            rows: 1,
            columns: vec![WireColumn::Str { offsets: vec![0, 1, 2], data: "é".into() }],
        };
        assert!(matches!(w.into_batch(&[DataType::Str]), Err(WireError::Strings { .. })));
    }

    proptest! {
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
    }
}
