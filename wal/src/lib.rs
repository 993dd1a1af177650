//! Durable local write-ahead log (filled by the WAL issue).
