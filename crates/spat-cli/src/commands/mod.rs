pub mod data_info;
pub mod model_info;
