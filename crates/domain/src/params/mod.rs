//! Custom and predefined parameters (being written).
