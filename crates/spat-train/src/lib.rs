//! spat-train
