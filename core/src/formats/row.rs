//! One decoded row, staged field by field and appended to a batch only once all fields are valid.

use std::borrow::Cow;

use crate::batch::{Batch, Column};

/// One field's decoded value, not yet in the batch. Strings borrow from the line unless they had
/// escapes to resolve.
#[derive(Debug, PartialEq)]
pub(super) enum Slot<'a> {
    Empty,
    /// An Int or a Timestamp (the same physical type).
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(Cow<'a, str>),
}

/// Fields a row stages on the stack; wider schemas stage on the heap (one allocation a line).
const INLINE_FIELDS: usize = 16;

/// The values of one row being decoded, one slot per schema field.
///
/// Decoding fills the slots in any order (JSON keys come in any order) and then calls
/// [`RowStage::commit`], so a line that fails half-way appends nothing: no rollback is needed.
pub(super) struct RowStage<'a> {
    inline: [Slot<'a>; INLINE_FIELDS],
    heap: Vec<Slot<'a>>,
    fields: usize,
}

impl<'a> RowStage<'a> {
    pub(super) fn new(fields: usize) -> RowStage<'a> {
        let heap =
            if fields > INLINE_FIELDS { (0..fields).map(|_| Slot::Empty).collect() } else { Vec::new() };
        RowStage { inline: [const { Slot::Empty }; INLINE_FIELDS], heap, fields }
    }

    pub(super) fn slots(&mut self) -> &mut [Slot<'a>] {
        if self.fields > INLINE_FIELDS {
            &mut self.heap
        } else {
            &mut self.inline[..self.fields]
        }
    }

    /// Appends the staged row to `batch`; every slot must be filled with its column's type.
    ///
    /// # Panics
    /// If a slot is empty or does not fit its column: a bug of the decoder or of the caller (a
    /// batch whose columns do not match the schema).
    pub(super) fn commit(mut self, batch: &mut Batch) {
        let slots = self.slots();
        assert_eq!(slots.len(), batch.columns.len(), "a staged row has one slot per column");
        for (slot, column) in slots.iter_mut().zip(&mut batch.columns) {
            match (std::mem::replace(slot, Slot::Empty), column) {
                (Slot::Int(v), Column::Int(c) | Column::Timestamp(c)) => c.push(v),
                (Slot::Float(v), Column::Float(c)) => c.push(v),
                (Slot::Bool(v), Column::Bool(c)) => c.push(v),
                (Slot::Str(v), Column::Str(c)) => c.push(&v),
                (slot, column) => {
                    panic!("RowStage::commit: {slot:?} into a {} column", column.data_type())
                }
            }
        }
        // The batch's row count is private; rebuilding the batch from its columns is the public
        // way to advance it without going through `Scalar`s (which would allocate every string).
        // `with_rows` also asserts that every column grew by exactly this one row.
        let rows = batch.len() + 1;
        let columns = std::mem::take(&mut batch.columns);
        *batch = Batch::with_rows(columns, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{DataType, Scalar};

    #[test]
    fn commit_appends_one_row_in_field_order() {
        let types = [DataType::Int, DataType::Str, DataType::Float, DataType::Bool, DataType::Timestamp];
        let mut batch = Batch::empty(&types, 2);
        let mut stage = RowStage::new(types.len());
        let slots = stage.slots();
        slots[4] = Slot::Int(7);
        slots[1] = Slot::Str(Cow::Borrowed("s"));
        slots[0] = Slot::Int(1);
        slots[3] = Slot::Bool(true);
        slots[2] = Slot::Float(0.5);
        stage.commit(&mut batch);
        assert_eq!(batch.len(), 1);
        let row = vec![
            Scalar::Int(1),
            Scalar::Str("s".into()),
            Scalar::Float(0.5),
            Scalar::Bool(true),
            Scalar::Timestamp(7),
        ];
        assert_eq!(batch.row(0), row);
    }

    #[test]
    fn wide_rows_stage_on_the_heap() {
        let types = vec![DataType::Int; INLINE_FIELDS + 3];
        let mut batch = Batch::empty(&types, 1);
        let mut stage = RowStage::new(types.len());
        for (i, slot) in stage.slots().iter_mut().enumerate() {
            *slot = Slot::Int(i as i64);
        }
        stage.commit(&mut batch);
        assert_eq!(batch.row(0)[INLINE_FIELDS + 2], Scalar::Int(INLINE_FIELDS as i64 + 2));
    }

    #[test]
    #[should_panic(expected = "into a bool column")]
    fn commit_rejects_a_mismatched_column() {
        let mut batch = Batch::empty(&[DataType::Bool], 1);
        let mut stage = RowStage::new(1);
        stage.slots()[0] = Slot::Int(1);
        stage.commit(&mut batch);
    }
}
