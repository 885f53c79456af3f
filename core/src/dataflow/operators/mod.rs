//! The operator catalog, one operator per file.

pub mod acc_columns;
pub mod accumulate;
pub mod aggregate;
pub mod filter;
pub mod key_by;
pub mod map;
pub mod sink;
pub mod union;
pub mod window;
