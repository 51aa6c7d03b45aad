//! Where [`crate::connection`]'s names used to live, kept only until loadgen
//! imports them from there (the last step of issue 12); nothing else in the
//! workspace uses this path.

pub use crate::connection::{READ_CHUNK_BYTES, ReadError};
