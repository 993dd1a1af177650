//! The events sink: Monasca events to Elasticsearch or OpenSearch, as the
//! reference's `elasticsearch` events repository stores them.
//! `document.rs` turns an event message into a `_bulk` item (its index,
//! id and document), `client.rs` talks HTTP to the nodes, `bulk.rs` reads
//! what `_bulk` answered for each item, `writer.rs` writes a record's items
//! until every one is stored or refused for good.

pub mod bulk;
pub mod client;
pub mod document;
pub mod writer;

pub use client::{EsClient, EsError};
pub use writer::{EventsWriter, RefusedItem, WriteReport};
