//! Columnar record batches: the unit that moves between operators.
//!
//! A batch holds up to [`crate::limits::BATCH_ROWS_MAX`] rows as one typed column per field, so that
//! operators and expressions run tight loops over plain vectors instead of interpreting values
//! row by row. The schema is not stored in the batch: every operator knows its input and output
//! schema from the validated job graph.

use crate::types::{DataType, Scalar};

/// UTF-8 strings stored back to back, with `offsets[i]..offsets[i + 1]` the bytes of row `i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrColumn {
    offsets: Vec<u32>,
    data: String,
}

impl Default for StrColumn {
    fn default() -> Self {
        StrColumn { offsets: vec![0], data: String::new() }
    }
}

impl StrColumn {
    pub fn with_capacity(rows: usize, bytes: usize) -> StrColumn {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StrColumn { offsets, data: String::with_capacity(bytes) }
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, row: usize) -> &str {
        &self.data[self.offsets[row] as usize..self.offsets[row + 1] as usize]
    }

    pub fn push(&mut self, value: &str) {
        self.data.push_str(value);
        let end = u32::try_from(self.data.len()).expect("a batch's strings stay far below 4 GiB");
        self.offsets.push(end);
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|row| self.get(row))
    }

    /// Total bytes of string data.
    pub fn data_bytes(&self) -> usize {
        self.data.len()
    }

    /// The column's parts: `offsets` (one more than the rows) and the string data.
    pub fn into_parts(self) -> (Vec<u32>, String) {
        (self.offsets, self.data)
    }

    /// Rebuilds a column from untrusted parts, checking that the offsets start at 0, never go
    /// back, end at the data's length and fall on character boundaries.
    pub fn from_parts(offsets: Vec<u32>, data: String) -> Result<StrColumn, String> {
        if offsets.first() != Some(&0) {
            return Err("string offsets must start at 0".into());
        }
        if offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err("string offsets go back".into());
        }
        let end = *offsets.last().expect("checked non-empty") as usize;
        if end != data.len() {
            return Err(format!("string offsets end at {end}, but the data has {} bytes", data.len()));
        }
        if let Some(&bad) = offsets.iter().find(|&&o| !data.is_char_boundary(o as usize)) {
            return Err(format!("string offset {bad} splits a character"));
        }
        Ok(StrColumn { offsets, data })
    }
}

impl<'a> FromIterator<&'a str> for StrColumn {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut column = StrColumn::default();
        for s in iter {
            column.push(s);
        }
        column
    }
}

/// The values of one field for every row of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Str(StrColumn),
    /// Milliseconds since the epoch; physically the same as `Int`.
    Timestamp(Vec<i64>),
}

impl Column {
    pub fn empty(data_type: DataType, capacity: usize) -> Column {
        match data_type {
            DataType::Int => Column::Int(Vec::with_capacity(capacity)),
            DataType::Float => Column::Float(Vec::with_capacity(capacity)),
            DataType::Bool => Column::Bool(Vec::with_capacity(capacity)),
            DataType::Str => Column::Str(StrColumn::with_capacity(capacity, capacity * 8)),
            DataType::Timestamp => Column::Timestamp(Vec::with_capacity(capacity)),
        }
    }

    pub fn data_type(&self) -> DataType {
        match self {
            Column::Int(_) => DataType::Int,
            Column::Float(_) => DataType::Float,
            Column::Bool(_) => DataType::Bool,
            Column::Str(_) => DataType::Str,
            Column::Timestamp(_) => DataType::Timestamp,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Column::Int(v) | Column::Timestamp(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i64` values of an Int or Timestamp column.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            Column::Int(v) | Column::Timestamp(v) => Some(v),
            _ => None,
        }
    }

    pub fn scalar(&self, row: usize) -> Scalar {
        match self {
            Column::Int(v) => Scalar::Int(v[row]),
            Column::Float(v) => Scalar::Float(v[row]),
            Column::Bool(v) => Scalar::Bool(v[row]),
            Column::Str(v) => Scalar::Str(v.get(row).to_owned()),
            Column::Timestamp(v) => Scalar::Timestamp(v[row]),
        }
    }

    /// Appends one value; the scalar's type must match the column's (Int and Timestamp mix).
    pub fn push_scalar(&mut self, value: &Scalar) {
        match (self, value) {
            (Column::Int(v) | Column::Timestamp(v), Scalar::Int(x) | Scalar::Timestamp(x)) => v.push(*x),
            (Column::Float(v), Scalar::Float(x)) => v.push(*x),
            (Column::Float(v), Scalar::Int(x)) => v.push(*x as f64),
            (Column::Bool(v), Scalar::Bool(x)) => v.push(*x),
            (Column::Str(v), Scalar::Str(x)) => v.push(x),
            (column, value) => panic!("push_scalar: {value:?} into a {} column", column.data_type()),
        }
    }

    /// Keeps the rows whose `keep` flag is set, in place.
    pub fn retain_mask(&mut self, keep: &[bool]) {
        debug_assert_eq!(keep.len(), self.len());
        fn retain<T: Copy>(values: &mut Vec<T>, keep: &[bool]) {
            // Branch-free compaction: write every value, advance only over kept ones.
            let mut out = 0;
            for i in 0..values.len() {
                values[out] = values[i];
                out += keep[i] as usize;
            }
            values.truncate(out);
        }
        match self {
            Column::Int(v) | Column::Timestamp(v) => retain(v, keep),
            Column::Float(v) => retain(v, keep),
            Column::Bool(v) => retain(v, keep),
            Column::Str(v) => {
                let mut kept = StrColumn::with_capacity(v.len(), v.data_bytes());
                for (row, s) in v.iter().enumerate() {
                    if keep[row] {
                        kept.push(s);
                    }
                }
                *v = kept;
            }
        }
    }

    /// Appends rows `rows` of `other`, which has the same type.
    pub fn extend_rows(&mut self, other: &Column, rows: &[u32]) {
        match (self, other) {
            (Column::Int(a), Column::Int(b)) | (Column::Timestamp(a), Column::Timestamp(b)) => {
                a.extend(rows.iter().map(|&r| b[r as usize]))
            }
            (Column::Float(a), Column::Float(b)) => a.extend(rows.iter().map(|&r| b[r as usize])),
            (Column::Bool(a), Column::Bool(b)) => a.extend(rows.iter().map(|&r| b[r as usize])),
            (Column::Str(a), Column::Str(b)) => rows.iter().for_each(|&r| a.push(b.get(r as usize))),
            (a, b) => panic!("extend_rows: {} into {}", b.data_type(), a.data_type()),
        }
    }

    /// Appends every row of `other`, which has the same type.
    pub fn extend_all(&mut self, other: &Column) {
        match (self, other) {
            (Column::Int(a), Column::Int(b)) | (Column::Timestamp(a), Column::Timestamp(b)) => {
                a.extend_from_slice(b)
            }
            (Column::Float(a), Column::Float(b)) => a.extend_from_slice(b),
            (Column::Bool(a), Column::Bool(b)) => a.extend_from_slice(b),
            (Column::Str(a), Column::Str(b)) => b.iter().for_each(|s| a.push(s)),
            (a, b) => panic!("extend_all: {} into {}", b.data_type(), a.data_type()),
        }
    }

    /// Splits off rows `at..` into a new column.
    pub fn split_off(&mut self, at: usize) -> Column {
        match self {
            Column::Int(v) => Column::Int(v.split_off(at)),
            Column::Timestamp(v) => Column::Timestamp(v.split_off(at)),
            Column::Float(v) => Column::Float(v.split_off(at)),
            Column::Bool(v) => Column::Bool(v.split_off(at)),
            Column::Str(v) => {
                let mut tail = StrColumn::default();
                for row in at..v.len() {
                    tail.push(v.get(row));
                }
                let mut head = StrColumn::default();
                for row in 0..at {
                    head.push(v.get(row));
                }
                *v = head;
                Column::Str(tail)
            }
        }
    }

    /// Approximate heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Column::Int(v) | Column::Timestamp(v) => v.capacity() * 8,
            Column::Float(v) => v.capacity() * 8,
            Column::Bool(v) => v.capacity(),
            Column::Str(v) => v.offsets.capacity() * 4 + v.data.capacity(),
        }
    }
}

/// Rows of one stream as columns, all of the same length.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Batch {
    pub columns: Vec<Column>,
    rows: usize,
}

impl Batch {
    /// Builds a batch from equally long columns.
    pub fn new(columns: Vec<Column>) -> Batch {
        let rows = columns.first().map_or(0, Column::len);
        assert!(columns.iter().all(|c| c.len() == rows), "columns of a batch differ in length");
        Batch { columns, rows }
    }

    /// A batch with columns but no rows (or no columns and `rows` rows, for empty schemas).
    pub fn with_rows(columns: Vec<Column>, rows: usize) -> Batch {
        assert!(columns.iter().all(|c| c.len() == rows), "columns of a batch differ in length");
        Batch { columns, rows }
    }

    pub fn empty(types: &[DataType], capacity: usize) -> Batch {
        Batch { columns: types.iter().map(|&t| Column::empty(t, capacity)).collect(), rows: 0 }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Keeps only the rows whose flag is set.
    pub fn retain_mask(&mut self, keep: &[bool]) {
        assert_eq!(keep.len(), self.rows, "mask length differs from the batch's rows");
        for column in &mut self.columns {
            column.retain_mask(keep);
        }
        self.rows = keep.iter().filter(|&&k| k).count();
    }

    /// Appends the given rows of `other` (same schema).
    pub fn extend_rows(&mut self, other: &Batch, rows: &[u32]) {
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.extend_rows(b, rows);
        }
        self.rows += rows.len();
    }

    /// Appends every row of `other` (same schema).
    pub fn extend_all(&mut self, other: &Batch) {
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.extend_all(b);
        }
        self.rows += other.rows;
    }

    /// Splits off rows `at..` into a new batch.
    pub fn split_off(&mut self, at: usize) -> Batch {
        assert!(at <= self.rows);
        let tail = Batch {
            columns: self.columns.iter_mut().map(|c| c.split_off(at)).collect(),
            rows: self.rows - at,
        };
        self.rows = at;
        tail
    }

    /// One row as scalars (for printing and tests; not for hot paths).
    pub fn row(&self, row: usize) -> Vec<Scalar> {
        self.columns.iter().map(|c| c.scalar(row)).collect()
    }

    /// Appends one row of scalars.
    pub fn push_row(&mut self, row: &[Scalar]) {
        assert_eq!(row.len(), self.columns.len(), "row width differs from the batch's");
        for (column, value) in self.columns.iter_mut().zip(row) {
            column.push_scalar(value);
        }
        self.rows += 1;
    }

    pub fn heap_bytes(&self) -> usize {
        self.columns.iter().map(Column::heap_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        Batch::new(vec![
            Column::Int(vec![1, 2, 3, 4]),
            Column::Str(["a", "bb", "", "dddd"].into_iter().collect()),
            Column::Bool(vec![true, false, true, false]),
        ])
    }

    #[test]
    fn retain_mask_keeps_selected_rows_in_order() {
        let mut b = sample();
        b.retain_mask(&[false, true, true, false]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.row(0), vec![Scalar::Int(2), Scalar::Str("bb".into()), Scalar::Bool(false)]);
        assert_eq!(b.row(1), vec![Scalar::Int(3), Scalar::Str("".into()), Scalar::Bool(true)]);
    }

    #[test]
    fn extend_rows_and_split_off_round_trip() {
        let src = sample();
        let mut b = Batch::empty(&[DataType::Int, DataType::Str, DataType::Bool], 4);
        b.extend_rows(&src, &[3, 0]);
        assert_eq!(b.row(0)[1], Scalar::Str("dddd".into()));
        let tail = b.split_off(1);
        assert_eq!(b.len(), 1);
        assert_eq!(tail.len(), 1);
        assert_eq!(tail.row(0)[0], Scalar::Int(1));
    }
}
