pub mod data_info;
