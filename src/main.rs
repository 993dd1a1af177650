//! monasca-persister binary.
fn main() {}
