//! Per-subscriber bandwidth estimation (being written).
