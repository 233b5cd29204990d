//! results.md / results.json (and the figure PNGs) of one reproduced id: spat's measurements of the
//! last and the best checkpoint of every run next to the thesis's numbers (or next to what the
//! thesis's text states where a figure prints none), the thesis's claims tested on them, every
//! setting with its source, and what ran (commits and commands).

mod alpha_grid;
mod cells;
mod images;
mod parts;
mod results;
mod sweep;
mod table;

pub use parts::setting;
pub use results::{write, write_all};
