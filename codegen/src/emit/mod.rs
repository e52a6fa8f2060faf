//! Emitters: one module per output, each reading only the checked [`crate::model`].

pub mod asyncapi;
pub mod docs;
pub mod rust;
pub mod schema;
pub mod ts;
