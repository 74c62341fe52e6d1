//! Property tests of the translation and validation: generated inputs,
//! including hostile and out-of-range ones, against rules stated
//! independently of the code (`oracle.rs`), and valid updates against the
//! emulator over real HTTP.

mod descriptor;
mod filter_emulator;
mod graph_answers;
mod ids;
mod list;
mod oracle;
mod status;
mod strategies;
mod update;
mod update_emulator;
