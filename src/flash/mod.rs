//! A miner's flash, in layers as espflash arranges them: pure formats (SPIFFS, the partition
//! table, the ROM loader's commands and SLIP framing), then the transport that moves commands
//! over a port, the loader operations built on it, and the DTR/RTS reset sequences.

pub mod chips;
pub mod command;
pub mod lines;
pub mod loader;
pub mod nerd_config;
pub mod partitions;
pub mod port;
pub mod session;
pub mod slip;
pub mod spiffs;
pub mod stub;
pub mod transport;
