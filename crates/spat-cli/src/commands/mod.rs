pub mod bench;
pub mod common;
pub mod data_info;
pub mod eval;
pub mod model_info;
pub mod sweep_alpha;
pub mod train;
pub mod visualize;
