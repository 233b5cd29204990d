//! spat-models
