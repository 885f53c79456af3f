//! The dataflow engine: operators, subtasks, and the plan that connects them.

pub mod credit;
pub mod element;
pub mod gate;
pub mod key_dictionary;
pub mod local;
pub mod operator;
pub mod operators;
pub mod panes;
pub mod plan;
pub mod sessions;
pub mod source;
pub mod subtask;
pub mod windowing;
pub mod writer;
