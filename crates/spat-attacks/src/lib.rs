//! spat-attacks
