//! Hostile text end to end: invalid UTF-8, embedded NUL, names of
//! combining marks or bidirectional overrides, and names that differ only
//! by Unicode normalization, against the rule in `logosnet::username`.
