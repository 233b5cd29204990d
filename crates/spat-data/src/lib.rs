//! spat-data
