//! `runnel serve` (being written).
