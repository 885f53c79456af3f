//! Tests of job files: a good file builds the expected graph, every bad one its exact error.
